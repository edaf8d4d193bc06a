#include "adapters/sqlite/sqlite_device_store.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "domain/device_json.h"

namespace pwrcell::adapters {
namespace {

using domain::DeviceRecord;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS devices (
  remote_id TEXT PRIMARY KEY,
  inverter_rcpn TEXT,
  version INTEGER NOT NULL,
  record TEXT NOT NULL,
  updated_at INTEGER
);
CREATE INDEX IF NOT EXISTS devices_by_inverter_rcpn ON devices (inverter_rcpn, remote_id);
)sql";

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
  PWRCELL_RETURN_IF_ERROR(database->EnsureSchema(kSchema).WithContext("device table in " + database->Path()));
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
  auto query =
      session.Prepare("SELECT version, record FROM devices WHERE inverter_rcpn = ?1 ORDER BY remote_id LIMIT 1");
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

Result<DeviceRecord> SqliteDeviceStore::Put(const DeviceRecord& record) {
  if (record.remote_id.empty()) return InvalidArgumentError("device record without remote_id");
  if (record.version < 0) return InvalidArgumentError("negative version for device " + record.remote_id);
  DeviceRecord stored = record;
  stored.version = record.version + 1;
  const std::string json = domain::DumpDeviceJson(stored);

  auto session = database_->Lock();
  // One statement each, so the version check and the write are atomic across processes too.
  auto write = session.Prepare(
      record.version == 0 ? "INSERT INTO devices (remote_id, inverter_rcpn, version, record, updated_at) "
                            "VALUES (?1, ?2, ?5 + 1, ?3, ?4) ON CONFLICT (remote_id) DO NOTHING"
                          : "UPDATE devices SET inverter_rcpn = ?2, version = ?5 + 1, record = ?3, updated_at = ?4 "
                            "WHERE remote_id = ?1 AND version = ?5");
  if (!write.ok()) return write.status();
  write->BindText(1, record.remote_id).BindText(3, json).BindOptionalInt64(4, UnixMillis(record.updated_at));
  write->BindInt64(5, record.version);
  if (record.inverter_rcpn.empty()) {
    write->BindNull(2);
  } else {
    write->BindText(2, record.inverter_rcpn);
  }
  PWRCELL_RETURN_IF_ERROR(write->Run().WithContext("writing device " + record.remote_id));
  if (session.Changes() == 0) {
    return AbortedError(record.version == 0 ? "device " + record.remote_id + " already exists"
                                            : "device " + record.remote_id + " is no longer at version " +
                                                  std::to_string(record.version));
  }
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
  if (session.Changes() == 0) {
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
