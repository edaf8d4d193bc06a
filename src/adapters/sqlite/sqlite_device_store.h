// The device table (SPEC section 2) in a SQLite file: the embedded default of `serve`.
//
//   devices(remote_id TEXT PRIMARY KEY, site_id TEXT, version INTEGER NOT NULL,
//           record TEXT NOT NULL, updated_at INTEGER)
//   index devices_by_site(site_id, remote_id)
//   device_inverters(rcpn TEXT, remote_id TEXT, PRIMARY KEY (rcpn, remote_id))
//   index device_inverters_by_device(remote_id)
//
//   device_readings(remote_id, rcpn, state, sys_mode, at, ordinal, PRIMARY KEY (remote_id, rcpn))
//
// `record` is the device as JSON (domain/device_json.h) without its hot fields: last_heard_at
// (devices.last_heard_at, Unix ms) and inverter_readings (device_readings) live in their columns,
// so that RecordHeard writes them without rewriting the JSON and Put merges them (max /
// newer-wins) instead of overwriting; every read puts them back into the record. The columns
// is_simulated, remote_state, evaluated_state, remote_state_cause, system_status and
// commissioning_state mirror the record, written by Put, for the fleet-wide queries; `version` is the column of record,
// and the conditional writes compare it in the statement that writes, so two writers (threads or processes) at the same
// version cannot both win. site_id (the record's site->site_id) and the device_inverters rows (its inverter RCP
// numbers) are the indexed copies of the record's keys, written in the same transaction as the record; an empty key is
// not stored, so it matches nothing. updated_at (Unix ms) mirrors the record's, for operators' queries.
//
// Schema version 4 (sqlite_database.h): a file of version 2 or 3 gains the columns and the table
// above, filled from each record's JSON (which loses its hot fields), in one transaction.
// Schema version 2 (sqlite_database.h). A file of version 1 (inverter_rcpn column, no site_id)
// is migrated when the store opens it: site_id and device_inverters are filled from each
// record's JSON and the old column and its index are dropped, in one transaction.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
  // The queries behind the indexed look-ups, exposed so that a test can check their query plan.
  static constexpr std::string_view kFindByInverterRcpnQuery =
      "SELECT d.version, d.record, d.last_heard_at FROM device_inverters AS i JOIN devices AS d "
      "ON d.remote_id = i.remote_id WHERE i.rcpn = ?1 ORDER BY i.remote_id LIMIT 1";
  static constexpr std::string_view kFindKeyByInverterRcpnQuery =
      "SELECT d.remote_id, d.version FROM device_inverters AS i JOIN devices AS d ON d.remote_id = i.remote_id "
      "WHERE i.rcpn = ?1 ORDER BY i.remote_id LIMIT 1";
  static constexpr std::string_view kTallyQuery =
      "SELECT is_simulated, remote_state, commissioning_state, count(*) FROM devices "
      "GROUP BY is_simulated, remote_state, commissioning_state";
  // domain::EvaluationSettled in SQL, negated; every comparison NULL-safe (IS, coalesce), so that
  // a NULL never hides a record from the sweep. ?2: the offline cutoff (Unix ms).
  static constexpr std::string_view kListUnsettledQuery =
      "SELECT version, record, last_heard_at FROM devices AS d WHERE remote_id > ?1 AND NOT coalesce("
      "evaluated_state IS NOT NULL AND evaluated_state IS remote_state AND ("
      "(coalesce(last_heard_at < ?2, 1) AND evaluated_state IS 'OFFLINE' AND remote_state_cause IS "
      "(CASE WHEN last_heard_at IS NULL THEN 'never_heard' ELSE 'silent:' || last_heard_at END)) OR "
      "(coalesce(last_heard_at >= ?2, 0) AND evaluated_state IS 'ONLINE' AND remote_state_cause IS 'online' AND "
      "(is_simulated IS 1 OR system_status IS NULL OR system_status IS 'SUCCESS') AND NOT EXISTS ("
      "SELECT 1 FROM device_readings AS r WHERE r.remote_id = d.remote_id AND r.state BETWEEN 28672 AND 32767))), 0) "
      "ORDER BY remote_id LIMIT ?3";
  static constexpr std::string_view kListBySiteQuery =
      "SELECT version, record, last_heard_at FROM devices WHERE site_id = ?1 ORDER BY remote_id";

  // Opens (creating if absent) the file at `path` and its schema. Factories rather than
  // constructors because opening can fail and no exception may cross a port.
  // Errors: those of SqliteDatabase::Open and SqliteDatabase::EnsureSchema.
  static Result<std::unique_ptr<SqliteDeviceStore>> Open(const std::string& path);
  // The device table in an already open database, shared with queues in the same file.
  static Result<std::unique_ptr<SqliteDeviceStore>> Create(std::shared_ptr<SqliteDatabase> database);

  Result<std::optional<domain::DeviceRecord>> Get(const std::string& remote_id) override;
  Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string& rcpn) override;
  Result<std::optional<ports::DeviceKey>> FindKeyByInverterRcpn(const std::string& rcpn) override;
  Result<bool> RecordHeard(const std::string& remote_id, Timestamp heard_at,
                           const std::optional<domain::InverterReading>& reading) override;
  Status RecordHeardBatch(const std::vector<ports::HeardUpdate>& updates) override;
  Result<std::vector<domain::DeviceRecord>> List() override;
  Result<std::vector<domain::DeviceRecord>> ListPage(const ports::DeviceFilter& filter,
                                                     const std::string& after_remote_id, std::size_t limit) override;
  Result<std::vector<ports::DeviceKey>> ListKeys(const ports::DeviceFilter& filter, const std::string& after_remote_id,
                                                 std::size_t limit) override;
  Result<std::int64_t> Count(const ports::DeviceFilter& filter) override;
  Result<std::vector<ports::DeviceTally>> Tally() override;
  Result<std::vector<domain::DeviceRecord>> ListUnsettled(Timestamp offline_cutoff, const std::string& after_remote_id,
                                                          std::size_t limit) override;
  Result<std::vector<domain::DeviceRecord>> ListBySite(const std::string& site_id) override;
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) override;
  Status Remove(const std::string& remote_id, std::int64_t expected_version) override;

 private:
  explicit SqliteDeviceStore(std::shared_ptr<SqliteDatabase> database) : database_(std::move(database)) {}

  std::shared_ptr<SqliteDatabase> database_;
};

}  // namespace pwrcell::adapters
