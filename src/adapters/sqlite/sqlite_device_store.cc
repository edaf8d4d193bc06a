#include "adapters/sqlite/sqlite_device_store.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "domain/device_json.h"

namespace pwrcell::adapters {
namespace {

using domain::DeviceRecord;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS devices (
  remote_id TEXT PRIMARY KEY,
  site_id TEXT,
  version INTEGER NOT NULL,
  record TEXT NOT NULL,
  updated_at INTEGER,
  last_heard_at INTEGER,
  is_simulated INTEGER NOT NULL DEFAULT 0,
  remote_state TEXT,
  evaluated_state TEXT,
  remote_state_cause TEXT,
  system_status TEXT,
  commissioning_state TEXT
);
CREATE INDEX IF NOT EXISTS devices_by_site ON devices (site_id, remote_id);
CREATE INDEX IF NOT EXISTS devices_by_remote_state ON devices (remote_state, remote_id);
CREATE INDEX IF NOT EXISTS devices_by_kind ON devices (is_simulated, remote_id);
CREATE INDEX IF NOT EXISTS devices_by_tally ON devices (is_simulated, remote_state, commissioning_state);
CREATE TABLE IF NOT EXISTS device_readings (
  remote_id TEXT NOT NULL,
  rcpn TEXT NOT NULL,
  state INTEGER NOT NULL,
  sys_mode INTEGER NOT NULL,
  at INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  PRIMARY KEY (remote_id, rcpn)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_inverters (
  rcpn TEXT NOT NULL,
  remote_id TEXT NOT NULL,
  PRIMARY KEY (rcpn, remote_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS device_inverters_by_device ON device_inverters (remote_id);
)sql";

// The indexed keys of a record. Empty keys are not stored, so they match nothing.
std::string SiteKey(const DeviceRecord& record) {
  return record.site ? record.site->site_id : std::string();
}

// Sorted and distinct, to compare with what the table holds.
std::vector<std::string> RcpnKeys(const DeviceRecord& record) {
  std::vector<std::string> keys;
  for (const auto& rcpn : record.inverter_rcpns) {
    if (!rcpn.empty()) keys.push_back(rcpn);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

std::optional<std::int64_t> UnixMillis(const std::optional<Timestamp>& t) {
  return t ? std::optional<std::int64_t>(ToUnixMillis(*t)) : std::nullopt;
}

// Makes device_inverters hold exactly `rcpns` for `remote_id` (a no-op when it already does, the
// common case: telemetry rewrites a record on every record it hears). Inside the caller's
// transaction.
Status WriteInverterKeys(SqliteSession& session, const std::string& remote_id, const std::vector<std::string>& rcpns) {
  std::vector<std::string> stored;
  {
    auto query = session.Prepare("SELECT rcpn FROM device_inverters WHERE remote_id = ?1 ORDER BY rcpn");
    if (!query.ok()) return query.status();
    query->BindText(1, remote_id);
    while (true) {
      auto row = query->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      stored.push_back(query->ColumnText(0));
    }
  }
  if (stored == rcpns) return Status::Ok();
  {
    auto remove = session.Prepare("DELETE FROM device_inverters WHERE remote_id = ?1");
    if (!remove.ok()) return remove.status();
    remove->BindText(1, remote_id);
    PWRCELL_RETURN_IF_ERROR(remove->Run());
  }
  for (const auto& rcpn : rcpns) {
    auto insert = session.Prepare("INSERT INTO device_inverters (rcpn, remote_id) VALUES (?1, ?2)");
    if (!insert.ok()) return insert.status();
    insert->BindText(1, rcpn).BindText(2, remote_id);
    PWRCELL_RETURN_IF_ERROR(insert->Run());
  }
  return Status::Ok();
}

// Schema version 1 -> 2: the site_id column and the device_inverters table replace the
// inverter_rcpn column. The keys are read from each record's JSON by the current decoder, which
// also reads records written in older shapes. A record that does not decode gets no keys (Get
// and List report it as kInternal, as before the migration).
Status MigrateToVersion2(SqliteSession& session) {
  PWRCELL_RETURN_IF_ERROR(session.Exec(R"sql(
ALTER TABLE devices ADD COLUMN site_id TEXT;
CREATE TABLE IF NOT EXISTS device_inverters (
  rcpn TEXT NOT NULL,
  remote_id TEXT NOT NULL,
  PRIMARY KEY (rcpn, remote_id)
) WITHOUT ROWID;
)sql"));
  struct Keys {
    std::string remote_id;
    std::string site_id;
    std::vector<std::string> rcpns;
  };
  std::vector<Keys> keys;
  {
    auto rows = session.Prepare("SELECT remote_id, record FROM devices ORDER BY remote_id");
    if (!rows.ok()) return rows.status();
    while (true) {
      auto row = rows->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const auto json = nlohmann::json::parse(rows->ColumnText(1), nullptr, /*allow_exceptions=*/false);
      if (json.is_discarded()) continue;
      auto record = domain::DeviceFromJson(json);
      if (!record.ok()) continue;
      keys.push_back({rows->ColumnText(0), SiteKey(*record), RcpnKeys(*record)});
    }
  }
  for (const auto& k : keys) {
    if (!k.site_id.empty()) {
      auto update = session.Prepare("UPDATE devices SET site_id = ?2 WHERE remote_id = ?1");
      if (!update.ok()) return update.status();
      update->BindText(1, k.remote_id).BindText(2, k.site_id);
      PWRCELL_RETURN_IF_ERROR(update->Run());
    }
    PWRCELL_RETURN_IF_ERROR(WriteInverterKeys(session, k.remote_id, k.rcpns));
  }
  return session.Exec("DROP INDEX IF EXISTS devices_by_inverter_rcpn; ALTER TABLE devices DROP COLUMN inverter_rcpn;");
}

// The columns schema version 4 adds to devices (also in kSchema for a new file).
constexpr std::string_view kVersion4Columns = R"sql(
ALTER TABLE devices ADD COLUMN last_heard_at INTEGER;
ALTER TABLE devices ADD COLUMN is_simulated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN remote_state TEXT;
ALTER TABLE devices ADD COLUMN evaluated_state TEXT;
ALTER TABLE devices ADD COLUMN remote_state_cause TEXT;
ALTER TABLE devices ADD COLUMN system_status TEXT;
ALTER TABLE devices ADD COLUMN commissioning_state TEXT;
CREATE TABLE IF NOT EXISTS device_readings (
  remote_id TEXT NOT NULL,
  rcpn TEXT NOT NULL,
  state INTEGER NOT NULL,
  sys_mode INTEGER NOT NULL,
  at INTEGER NOT NULL,
  ordinal INTEGER NOT NULL,
  PRIMARY KEY (remote_id, rcpn)
) WITHOUT ROWID;
)sql";

constexpr std::string_view kUpsertReading =
    "INSERT INTO device_readings (remote_id, rcpn, state, sys_mode, at, ordinal) VALUES (?1, ?2, ?3, ?4, ?5, "
    "(SELECT coalesce(max(ordinal) + 1, 0) FROM device_readings WHERE remote_id = ?1)) "
    "ON CONFLICT (remote_id, rcpn) DO UPDATE SET state = excluded.state, sys_mode = excluded.sys_mode, at = "
    "excluded.at "
    "WHERE excluded.at >= device_readings.at AND NOT (device_readings.state = excluded.state AND "
    "device_readings.sys_mode = excluded.sys_mode AND device_readings.at = excluded.at)";

std::optional<std::string> StateName(const std::optional<domain::RemoteState>& state) {
  return state ? std::optional<std::string>(std::string(domain::RemoteStateName(*state))) : std::nullopt;
}

void BindOptionalText(SqliteStatement& statement, int index, const std::optional<std::string>& text) {
  if (text) {
    statement.BindText(index, *text);
  } else {
    statement.BindNull(index);
  }
}

// The record as its JSON column holds it: without the hot fields, which live in their columns.
std::string ColdJson(const DeviceRecord& record) {
  DeviceRecord cold = record;
  cold.last_heard_at.reset();
  cold.inverter_readings.clear();
  return domain::DumpDeviceJson(cold);
}

// Writes the columns that mirror the record (read by the fleet-wide queries) for `remote_id`.
Status WriteMirrorColumns(SqliteSession& session, const DeviceRecord& record) {
  auto update = session.Prepare(
      "UPDATE devices SET is_simulated = ?2, remote_state = ?3, evaluated_state = ?4, remote_state_cause = ?5, "
      "system_status = ?6, commissioning_state = ?7 WHERE remote_id = ?1");
  if (!update.ok()) return update.status();
  update->BindText(1, record.remote_id).BindInt64(2, record.is_simulated ? 1 : 0);
  BindOptionalText(*update, 3, StateName(record.remote_state));
  BindOptionalText(*update, 4, StateName(record.evaluated_state));
  update->BindText(5, record.remote_state_cause);
  BindOptionalText(*update, 6, record.system_status);
  update->BindText(7, domain::CommissioningStateName(record.commissioning.state));
  return update->Run();
}

// Keeps `reading` unless the stored reading of its inverter is newer (RecordInverterReading).
// Returns whether the table changed.
Result<bool> UpsertReading(SqliteSession& session, const std::string& remote_id, const domain::InverterReading& r) {
  auto upsert = session.Prepare(kUpsertReading);
  if (!upsert.ok()) return upsert.status();
  upsert->BindText(1, remote_id).BindText(2, r.rcpn).BindInt64(3, r.state).BindInt64(4, r.sys_mode);
  upsert->BindInt64(5, ToUnixMillis(r.at));
  PWRCELL_RETURN_IF_ERROR(upsert->Run());
  return session.Changes() > 0;
}

// Schema version 3 -> 4: last_heard_at and the inverter readings move out of the record's JSON
// into devices.last_heard_at and device_readings (RecordHeard writes them without rewriting the
// record), and the columns the fleet-wide queries read mirror the record. A record that does
// not decode keeps its JSON and gets no columns (Get and List report it as kInternal).
Status MigrateToVersion4(SqliteSession& session) {
  PWRCELL_RETURN_IF_ERROR(session.Exec(kVersion4Columns));
  std::vector<DeviceRecord> records;
  {
    auto rows = session.Prepare("SELECT remote_id, record FROM devices ORDER BY remote_id");
    if (!rows.ok()) return rows.status();
    while (true) {
      auto row = rows->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const auto json = nlohmann::json::parse(rows->ColumnText(1), nullptr, /*allow_exceptions=*/false);
      if (json.is_discarded()) continue;
      auto record = domain::DeviceFromJson(json);
      if (!record.ok()) continue;
      record->remote_id = rows->ColumnText(0);
      records.push_back(std::move(record).value());
    }
  }
  for (const auto& record : records) {
    {
      auto update = session.Prepare("UPDATE devices SET record = ?2, last_heard_at = ?3 WHERE remote_id = ?1");
      if (!update.ok()) return update.status();
      update->BindText(1, record.remote_id).BindText(2, ColdJson(record));
      update->BindOptionalInt64(3, UnixMillis(record.last_heard_at));
      PWRCELL_RETURN_IF_ERROR(update->Run());
    }
    PWRCELL_RETURN_IF_ERROR(WriteMirrorColumns(session, record));
    for (const auto& reading : record.inverter_readings) {
      auto written = UpsertReading(session, record.remote_id, reading);
      if (!written.ok()) return written.status();
    }
  }
  return Status::Ok();
}

const SqliteSchema& DeviceSchema() {
  static const SqliteSchema schema{
      .component = "devices",
      .table = "devices",
      .ddl = kSchema,
      .migrations = {{.version = 2, .apply = MigrateToVersion2}, {.version = 4, .apply = MigrateToVersion4}},
  };
  return schema;
}

// A row of (version, record, last_heard_at) -> the record without its inverter readings
// (LoadReadings). The version column wins over the JSON's copy.
Result<DeviceRecord> DecodeRow(const SqliteStatement& row) {
  const std::string text = row.ColumnText(1);
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return InternalError("a stored device record is not JSON");
  auto record = domain::DeviceFromJson(json);
  if (!record.ok()) return InternalError("a stored device record does not decode: " + record.status().message());
  record->version = row.ColumnInt64(0);
  const auto last_heard = row.ColumnOptionalInt64(2);
  record->last_heard_at = last_heard ? std::optional<Timestamp>(FromUnixMillis(*last_heard)) : std::nullopt;
  return record;
}

// Sets record.inverter_readings from device_readings, in the record's order (inverter_rcpns,
// then the others in the order they were first stored).
Status LoadReadings(SqliteSession& session, DeviceRecord& record) {
  auto query = session.Prepare(
      "SELECT rcpn, state, sys_mode, at FROM device_readings WHERE remote_id = ?1 ORDER BY ordinal, rcpn");
  if (!query.ok()) return query.status();
  query->BindText(1, record.remote_id);
  record.inverter_readings.clear();
  while (true) {
    auto row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    record.RecordInverterReading(
        domain::InverterReading{query->ColumnText(0), static_cast<std::uint32_t>(query->ColumnInt64(1)),
                                static_cast<int>(query->ColumnInt64(2)), FromUnixMillis(query->ColumnInt64(3))});
  }
  return Status::Ok();
}

// Runs a query that yields (version, record, last_heard_at) rows and decodes at most `limit` of
// them, with their readings.
Result<std::vector<DeviceRecord>> Collect(SqliteSession& session, SqliteStatement& query, std::size_t limit) {
  std::vector<DeviceRecord> records;
  while (records.size() < limit) {
    auto row = query.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto record = DecodeRow(query);
    if (!record.ok()) return record.status();
    records.push_back(std::move(record).value());
  }
  for (auto& record : records) PWRCELL_RETURN_IF_ERROR(LoadReadings(session, record));
  return records;
}

Result<std::optional<DeviceRecord>> First(Result<std::vector<DeviceRecord>> records) {
  if (!records.ok()) return records.status();
  if (records->empty()) return std::optional<DeviceRecord>();
  return std::optional<DeviceRecord>(std::move(records->front()));
}

// Whether device `remote_id` exists.
Result<bool> Exists(SqliteSession& session, const std::string& remote_id) {
  auto exists = session.Prepare("SELECT 1 FROM devices WHERE remote_id = ?1");
  if (!exists.ok()) return exists.status();
  exists->BindText(1, remote_id);
  return exists->Step();
}

// RecordHeard inside the caller's transaction; kNotFound when the device does not exist.
Result<bool> ApplyHeard(SqliteSession& session, const std::string& remote_id, Timestamp heard_at,
                        const std::optional<domain::InverterReading>& reading) {
  bool changed = false;
  {
    auto raise = session.Prepare(
        "UPDATE devices SET last_heard_at = ?2 WHERE remote_id = ?1 AND (last_heard_at IS NULL OR last_heard_at < ?2)");
    if (!raise.ok()) return raise.status();
    raise->BindText(1, remote_id).BindInt64(2, ToUnixMillis(heard_at));
    PWRCELL_RETURN_IF_ERROR(raise->Run());
    changed = session.Changes() > 0;
  }
  if (!changed) {
    auto exists = Exists(session, remote_id);
    if (!exists.ok()) return exists.status();
    if (!*exists) return NotFoundError("no device " + remote_id);
  }
  if (reading) {
    auto written = UpsertReading(session, remote_id, *reading);
    if (!written.ok()) return written.status();
    changed = changed || *written;
  }
  return changed;
}

// Makes device_readings hold what a Put of `record` keeps (ports/device_store.h, "Hot fields"):
// the record's readings unless a stored one is newer, the stored readings of the inverters it
// lists, nothing else. `created`: the record is new (no stored reading can be kept).
Status WriteReadings(SqliteSession& session, const DeviceRecord& record, bool created) {
  if (created) {
    auto clear = session.Prepare("DELETE FROM device_readings WHERE remote_id = ?1");
    if (!clear.ok()) return clear.status();
    clear->BindText(1, record.remote_id);
    PWRCELL_RETURN_IF_ERROR(clear->Run());
  } else {
    std::vector<std::string> stored;
    {
      auto query = session.Prepare("SELECT rcpn FROM device_readings WHERE remote_id = ?1");
      if (!query.ok()) return query.status();
      query->BindText(1, record.remote_id);
      while (true) {
        auto row = query->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        stored.push_back(query->ColumnText(0));
      }
    }
    for (const auto& rcpn : stored) {
      const bool reported = std::any_of(record.inverter_readings.begin(), record.inverter_readings.end(),
                                        [&](const domain::InverterReading& r) { return r.rcpn == rcpn; });
      const bool listed =
          std::find(record.inverter_rcpns.begin(), record.inverter_rcpns.end(), rcpn) != record.inverter_rcpns.end();
      if (reported || listed) continue;
      auto drop = session.Prepare("DELETE FROM device_readings WHERE remote_id = ?1 AND rcpn = ?2");
      if (!drop.ok()) return drop.status();
      drop->BindText(1, record.remote_id).BindText(2, rcpn);
      PWRCELL_RETURN_IF_ERROR(drop->Run());
    }
  }
  for (const auto& reading : record.inverter_readings) {
    auto written = UpsertReading(session, record.remote_id, reading);
    if (!written.ok()) return written.status();
  }
  return Status::Ok();
}

// The WHERE terms of `filter` (after "remote_id > ?1"), its values bound from ?2 on.
std::string FilterTerms(const ports::DeviceFilter& filter) {
  std::string terms;
  if (filter.is_simulated) terms += " AND is_simulated = ?2";
  if (filter.remote_state) terms += " AND remote_state = ?3";
  return terms;
}

void BindFilter(SqliteStatement& statement, const ports::DeviceFilter& filter) {
  if (filter.is_simulated) statement.BindInt64(2, *filter.is_simulated ? 1 : 0);
  if (filter.remote_state) statement.BindText(3, domain::RemoteStateName(*filter.remote_state));
}

std::int64_t SqlLimit(std::size_t limit) {
  return static_cast<std::int64_t>(std::min<std::size_t>(limit, static_cast<std::size_t>(INT64_MAX)));
}

}  // namespace

Result<std::unique_ptr<SqliteDeviceStore>> SqliteDeviceStore::Open(const std::string& path) {
  auto database = SqliteDatabase::Open(path);
  if (!database.ok()) return database.status();
  return Create(std::move(database).value());
}

Result<std::unique_ptr<SqliteDeviceStore>> SqliteDeviceStore::Create(std::shared_ptr<SqliteDatabase> database) {
  PWRCELL_RETURN_IF_ERROR(database->EnsureSchema(DeviceSchema()).WithContext("device table in " + database->Path()));
  return std::unique_ptr<SqliteDeviceStore>(new SqliteDeviceStore(std::move(database)));
}

Result<std::optional<DeviceRecord>> SqliteDeviceStore::Get(const std::string& remote_id) {
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT version, record, last_heard_at FROM devices WHERE remote_id = ?1");
  if (!query.ok()) return query.status();
  query->BindText(1, remote_id);
  return First(Collect(session, *query, 1));
}

Result<std::optional<DeviceRecord>> SqliteDeviceStore::FindByInverterRcpn(const std::string& rcpn) {
  if (rcpn.empty()) return std::optional<DeviceRecord>();
  auto session = database_->Lock();
  auto query = session.Prepare(kFindByInverterRcpnQuery);
  if (!query.ok()) return query.status();
  query->BindText(1, rcpn);
  return First(Collect(session, *query, 1));
}

Result<std::optional<ports::DeviceKey>> SqliteDeviceStore::FindKeyByInverterRcpn(const std::string& rcpn) {
  if (rcpn.empty()) return std::optional<ports::DeviceKey>();
  auto session = database_->Lock();
  auto query = session.Prepare(kFindKeyByInverterRcpnQuery);
  if (!query.ok()) return query.status();
  query->BindText(1, rcpn);
  auto row = query->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<ports::DeviceKey>();
  return std::optional<ports::DeviceKey>(ports::DeviceKey{query->ColumnText(0), query->ColumnInt64(1)});
}

Result<bool> SqliteDeviceStore::RecordHeard(const std::string& remote_id, Timestamp heard_at,
                                            const std::optional<domain::InverterReading>& reading) {
  auto session = database_->Lock();
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  auto changed = ApplyHeard(session, remote_id, heard_at, reading);
  if (!changed.ok()) return changed.status();
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("recording telemetry of device " + remote_id));
  return *changed;
}

Status SqliteDeviceStore::RecordHeardBatch(const std::vector<ports::HeardUpdate>& updates) {
  if (updates.empty()) return Status::Ok();
  auto session = database_->Lock();
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  for (const auto& update : updates) {
    auto changed = ApplyHeard(session, update.remote_id, update.heard_at, update.reading);
    if (!changed.ok() && changed.status().code() != StatusCode::kNotFound) return changed.status();
  }
  return transaction->Commit().WithContext("recording telemetry of " + std::to_string(updates.size()) + " devices");
}

Result<std::vector<DeviceRecord>> SqliteDeviceStore::List() {
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT version, record, last_heard_at FROM devices ORDER BY remote_id");
  if (!query.ok()) return query.status();
  return Collect(session, *query, static_cast<std::size_t>(-1));
}

Result<std::vector<DeviceRecord>> SqliteDeviceStore::ListPage(const ports::DeviceFilter& filter,
                                                              const std::string& after_remote_id, std::size_t limit) {
  if (limit == 0) return std::vector<DeviceRecord>();
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT version, record, last_heard_at FROM devices WHERE remote_id > ?1" +
                               FilterTerms(filter) + " ORDER BY remote_id LIMIT ?4");
  if (!query.ok()) return query.status();
  query->BindText(1, after_remote_id).BindInt64(4, SqlLimit(limit));
  BindFilter(*query, filter);
  return Collect(session, *query, limit);
}

Result<std::vector<ports::DeviceKey>> SqliteDeviceStore::ListKeys(const ports::DeviceFilter& filter,
                                                                  const std::string& after_remote_id,
                                                                  std::size_t limit) {
  std::vector<ports::DeviceKey> keys;
  if (limit == 0) return keys;
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT remote_id, version FROM devices WHERE remote_id > ?1" + FilterTerms(filter) +
                               " ORDER BY remote_id LIMIT ?4");
  if (!query.ok()) return query.status();
  query->BindText(1, after_remote_id).BindInt64(4, SqlLimit(limit));
  BindFilter(*query, filter);
  while (true) {
    auto row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    keys.push_back({query->ColumnText(0), query->ColumnInt64(1)});
  }
  return keys;
}

Result<std::int64_t> SqliteDeviceStore::Count(const ports::DeviceFilter& filter) {
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT count(*) FROM devices WHERE remote_id > ?1" + FilterTerms(filter));
  if (!query.ok()) return query.status();
  query->BindText(1, "");
  BindFilter(*query, filter);
  auto row = query->Step();
  if (!row.ok()) return row.status();
  return *row ? query->ColumnInt64(0) : 0;
}

Result<std::vector<ports::DeviceTally>> SqliteDeviceStore::Tally() {
  auto session = database_->Lock();
  auto query = session.Prepare(kTallyQuery);
  if (!query.ok()) return query.status();
  std::vector<ports::DeviceTally> tallies;
  while (true) {
    auto row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ports::DeviceTally tally;
    tally.is_simulated = query->ColumnInt64(0) != 0;
    tally.remote_state = domain::ParseRemoteState(query->ColumnText(1));
    tally.commissioning =
        domain::ParseCommissioningState(query->ColumnText(2)).value_or(domain::CommissioningState::kNotRequested);
    tally.count = query->ColumnInt64(3);
    // Rows whose text decodes to the same key (a NULL commissioning state of an undecodable
    // record) are added together.
    auto same = std::find_if(tallies.begin(), tallies.end(), [&](const ports::DeviceTally& t) {
      return t.is_simulated == tally.is_simulated && t.remote_state == tally.remote_state &&
             t.commissioning == tally.commissioning;
    });
    if (same == tallies.end()) {
      tallies.push_back(tally);
    } else {
      same->count += tally.count;
    }
  }
  return tallies;
}

Result<std::vector<DeviceRecord>> SqliteDeviceStore::ListUnsettled(Timestamp offline_cutoff,
                                                                   const std::string& after_remote_id,
                                                                   std::size_t limit) {
  if (limit == 0) return std::vector<DeviceRecord>();
  auto session = database_->Lock();
  auto query = session.Prepare(kListUnsettledQuery);
  if (!query.ok()) return query.status();
  query->BindText(1, after_remote_id).BindInt64(2, ToUnixMillis(offline_cutoff)).BindInt64(3, SqlLimit(limit));
  return Collect(session, *query, limit);
}

Result<std::vector<DeviceRecord>> SqliteDeviceStore::ListBySite(const std::string& site_id) {
  if (site_id.empty()) return std::vector<DeviceRecord>();
  auto session = database_->Lock();
  auto query = session.Prepare(kListBySiteQuery);
  if (!query.ok()) return query.status();
  query->BindText(1, site_id);
  return Collect(session, *query, static_cast<std::size_t>(-1));
}

Result<DeviceRecord> SqliteDeviceStore::Put(const DeviceRecord& record) {
  if (record.remote_id.empty()) return InvalidArgumentError("device record without remote_id");
  if (record.version < 0) return InvalidArgumentError("negative version for device " + record.remote_id);
  DeviceRecord stored = record;
  stored.version = record.version + 1;
  const std::string json = ColdJson(stored);
  const std::string site_id = SiteKey(record);

  auto session = database_->Lock();
  // The record, its index rows and its hot fields in one transaction, so that no reader (thread
  // or process) finds a record by a key it no longer has. The version is compared in the
  // statement that writes, so two writers at the same version cannot both win.
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  {
    // last_heard_at never moves backwards: RecordHeard may have raised it since the caller read.
    auto write = session.Prepare(
        record.version == 0
            ? "INSERT INTO devices (remote_id, site_id, version, record, updated_at, last_heard_at) "
              "VALUES (?1, ?2, ?5 + 1, ?3, ?4, ?6) ON CONFLICT (remote_id) DO NOTHING"
            : "UPDATE devices SET site_id = ?2, version = ?5 + 1, record = ?3, updated_at = ?4, last_heard_at = "
              "CASE WHEN ?6 IS NOT NULL AND (last_heard_at IS NULL OR ?6 > last_heard_at) THEN ?6 ELSE last_heard_at "
              "END WHERE remote_id = ?1 AND version = ?5");
    if (!write.ok()) return write.status();
    write->BindText(1, record.remote_id).BindText(3, json).BindOptionalInt64(4, UnixMillis(record.updated_at));
    write->BindInt64(5, record.version).BindOptionalInt64(6, UnixMillis(record.last_heard_at));
    if (site_id.empty()) {
      write->BindNull(2);
    } else {
      write->BindText(2, site_id);
    }
    PWRCELL_RETURN_IF_ERROR(write->Run().WithContext("writing device " + record.remote_id));
  }
  if (session.Changes() == 0) {
    return AbortedError(record.version == 0 ? "device " + record.remote_id + " already exists"
                                            : "device " + record.remote_id + " is no longer at version " +
                                                  std::to_string(record.version));
  }
  PWRCELL_RETURN_IF_ERROR(WriteMirrorColumns(session, record).WithContext("writing device " + record.remote_id));
  PWRCELL_RETURN_IF_ERROR(WriteInverterKeys(session, record.remote_id, RcpnKeys(record))
                              .WithContext("indexing device " + record.remote_id));
  PWRCELL_RETURN_IF_ERROR(WriteReadings(session, record, record.version == 0)
                              .WithContext("writing readings of device " + record.remote_id));
  // What was kept of the hot fields, as a read would give them.
  {
    auto heard = session.Prepare("SELECT last_heard_at FROM devices WHERE remote_id = ?1");
    if (!heard.ok()) return heard.status();
    heard->BindText(1, record.remote_id);
    auto row = heard->Step();
    if (!row.ok()) return row.status();
    const auto last_heard = *row ? heard->ColumnOptionalInt64(0) : std::nullopt;
    stored.last_heard_at = last_heard ? std::optional<Timestamp>(FromUnixMillis(*last_heard)) : std::nullopt;
  }
  PWRCELL_RETURN_IF_ERROR(LoadReadings(session, stored));
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("writing device " + record.remote_id));
  return stored;
}

Status SqliteDeviceStore::Remove(const std::string& remote_id, std::int64_t expected_version) {
  auto session = database_->Lock();
  // A transaction, so that "no row deleted" is told apart as gone vs. other version consistently.
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  {
    auto remove = session.Prepare("DELETE FROM devices WHERE remote_id = ?1 AND version = ?2");
    if (!remove.ok()) return remove.status();
    remove->BindText(1, remote_id).BindInt64(2, expected_version);
    PWRCELL_RETURN_IF_ERROR(remove->Run().WithContext("removing device " + remote_id));
  }
  const bool removed = session.Changes() > 0;
  if (!removed) {
    auto exists = Exists(session, remote_id);
    if (!exists.ok()) return exists.status();
    if (!*exists) return NotFoundError("no device " + remote_id);
    return AbortedError("device " + remote_id + " is no longer at version " + std::to_string(expected_version));
  }
  PWRCELL_RETURN_IF_ERROR(WriteInverterKeys(session, remote_id, {}));
  {
    auto readings = session.Prepare("DELETE FROM device_readings WHERE remote_id = ?1");
    if (!readings.ok()) return readings.status();
    readings->BindText(1, remote_id);
    PWRCELL_RETURN_IF_ERROR(readings->Run());
  }
  return transaction->Commit();
}

}  // namespace pwrcell::adapters
