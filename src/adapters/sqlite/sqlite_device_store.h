// The device table (SPEC section 2) in a SQLite file: the embedded default of `serve`.
//
//   devices(remote_id TEXT PRIMARY KEY, inverter_rcpn TEXT, version INTEGER NOT NULL,
//           record TEXT NOT NULL, updated_at INTEGER)
//   index devices_by_inverter_rcpn(inverter_rcpn, remote_id)
//
// `record` is the device as JSON (domain/device_json.h); `version` is the column of record, and
// the conditional writes compare it in the same statement that writes, so two writers (threads
// or processes) at the same version cannot both win. inverter_rcpn is NULL while unknown, so an
// empty rcpn matches nothing. updated_at (Unix ms) mirrors the record's, for operators' queries.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/sqlite/sqlite_database.h"
#include "ports/device_store.h"

namespace pwrcell::adapters {

// Thread-safe; several processes may open the same file. Errors are those of
// ports::DeviceStore: kUnavailable when the file is busy beyond the busy timeout or cannot be
// written (retry), kAborted on a version mismatch, kInvalidArgument for a record without
// remote_id or with a negative version, kNotFound from Remove; kInternal when a stored record
// does not decode.
class SqliteDeviceStore final : public ports::DeviceStore {
 public:
  // Opens (creating if absent) the file at `path` and its schema. Factories rather than
  // constructors because opening can fail and no exception may cross a port.
  // Errors: those of SqliteDatabase::Open and SqliteDatabase::EnsureSchema.
  static Result<std::unique_ptr<SqliteDeviceStore>> Open(const std::string& path);
  // The device table in an already open database, shared with queues in the same file.
  static Result<std::unique_ptr<SqliteDeviceStore>> Create(std::shared_ptr<SqliteDatabase> database);

  Result<std::optional<domain::DeviceRecord>> Get(const std::string& remote_id) override;
  Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string& rcpn) override;
  Result<std::vector<domain::DeviceRecord>> List() override;
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) override;
  Status Remove(const std::string& remote_id, std::int64_t expected_version) override;

 private:
  explicit SqliteDeviceStore(std::shared_ptr<SqliteDatabase> database) : database_(std::move(database)) {}

  std::shared_ptr<SqliteDatabase> database_;
};

}  // namespace pwrcell::adapters
