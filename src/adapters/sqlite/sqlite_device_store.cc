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
  updated_at INTEGER
);
CREATE INDEX IF NOT EXISTS devices_by_site ON devices (site_id, remote_id);
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

const SqliteSchema& DeviceSchema() {
  static const SqliteSchema schema{
      .component = "devices",
      .table = "devices",
      .ddl = kSchema,
      .migrations = {{.version = 2, .apply = MigrateToVersion2}},
  };
  return schema;
}

// A row of (version, record) -> the record. The version column wins over the JSON's copy.
Result<DeviceRecord> DecodeRow(const SqliteStatement& row) {
  const std::string text = row.ColumnText(1);
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return InternalError("a stored device record is not JSON");
  auto record = domain::DeviceFromJson(json);
  if (!record.ok()) return InternalError("a stored device record does not decode: " + record.status().message());
  record->version = row.ColumnInt64(0);
  return record;
}

// Runs a query that yields (version, record) rows and decodes at most `limit` of them.
Result<std::vector<DeviceRecord>> Collect(SqliteStatement& query, std::size_t limit) {
  std::vector<DeviceRecord> records;
  while (records.size() < limit) {
    auto row = query.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto record = DecodeRow(query);
    if (!record.ok()) return record.status();
    records.push_back(std::move(record).value());
  }
  return records;
}

Result<std::optional<DeviceRecord>> First(Result<std::vector<DeviceRecord>> records) {
  if (!records.ok()) return records.status();
  if (records->empty()) return std::optional<DeviceRecord>();
  return std::optional<DeviceRecord>(std::move(records->front()));
}

std::optional<std::int64_t> UnixMillis(const std::optional<Timestamp>& t) {
  return t ? std::optional<std::int64_t>(ToUnixMillis(*t)) : std::nullopt;
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
  auto query = session.Prepare("SELECT version, record FROM devices WHERE remote_id = ?1");
  if (!query.ok()) return query.status();
  query->BindText(1, remote_id);
  return First(Collect(*query, 1));
}

Result<std::optional<DeviceRecord>> SqliteDeviceStore::FindByInverterRcpn(const std::string& rcpn) {
  if (rcpn.empty()) return std::optional<DeviceRecord>();
  auto session = database_->Lock();
  auto query = session.Prepare(kFindByInverterRcpnQuery);
  if (!query.ok()) return query.status();
  query->BindText(1, rcpn);
  return First(Collect(*query, 1));
}

Result<std::vector<DeviceRecord>> SqliteDeviceStore::List() {
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT version, record FROM devices ORDER BY remote_id");
  if (!query.ok()) return query.status();
  return Collect(*query, static_cast<std::size_t>(-1));
}

Result<std::vector<DeviceRecord>> SqliteDeviceStore::ListBySite(const std::string& site_id) {
  if (site_id.empty()) return std::vector<DeviceRecord>();
  auto session = database_->Lock();
  auto query = session.Prepare(kListBySiteQuery);
  if (!query.ok()) return query.status();
  query->BindText(1, site_id);
  return Collect(*query, static_cast<std::size_t>(-1));
}

Result<DeviceRecord> SqliteDeviceStore::Put(const DeviceRecord& record) {
  if (record.remote_id.empty()) return InvalidArgumentError("device record without remote_id");
  if (record.version < 0) return InvalidArgumentError("negative version for device " + record.remote_id);
  DeviceRecord stored = record;
  stored.version = record.version + 1;
  const std::string json = domain::DumpDeviceJson(stored);
  const std::string site_id = SiteKey(record);

  auto session = database_->Lock();
  // The record and its index rows in one transaction, so that no reader (thread or process)
  // finds a record by a key it no longer has. The version is compared in the statement that
  // writes, so two writers at the same version cannot both win.
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  {
    auto write = session.Prepare(
        record.version == 0 ? "INSERT INTO devices (remote_id, site_id, version, record, updated_at) "
                              "VALUES (?1, ?2, ?5 + 1, ?3, ?4) ON CONFLICT (remote_id) DO NOTHING"
                            : "UPDATE devices SET site_id = ?2, version = ?5 + 1, record = ?3, updated_at = ?4 "
                              "WHERE remote_id = ?1 AND version = ?5");
    if (!write.ok()) return write.status();
    write->BindText(1, record.remote_id).BindText(3, json).BindOptionalInt64(4, UnixMillis(record.updated_at));
    write->BindInt64(5, record.version);
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
  PWRCELL_RETURN_IF_ERROR(WriteInverterKeys(session, record.remote_id, RcpnKeys(record))
                              .WithContext("indexing device " + record.remote_id));
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
  if (removed) PWRCELL_RETURN_IF_ERROR(WriteInverterKeys(session, remote_id, {}));
  if (!removed) {
    auto exists = session.Prepare("SELECT 1 FROM devices WHERE remote_id = ?1");
    if (!exists.ok()) return exists.status();
    exists->BindText(1, remote_id);
    auto row = exists->Step();
    if (!row.ok()) return row.status();
    if (!*row) return NotFoundError("no device " + remote_id);
    return AbortedError("device " + remote_id + " is no longer at version " + std::to_string(expected_version));
  }
  return transaction->Commit();
}

}  // namespace pwrcell::adapters
