// The coordination state (ports/coordination.h) in the adapter's SQLite file, so that every
// process that opens the file (several `serve` instances, the CLI) shares one set of leases,
// throttles and values.
//
//   coordination_leases(name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL)
//   coordination_throttles(key TEXT PRIMARY KEY, at INTEGER NOT NULL)
//   coordination_values(key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL)
//
// Times are Unix milliseconds. Each lease, throttle and value write is one conditional statement
// (an upsert whose DO UPDATE carries the condition, or an UPDATE ... WHERE version = ?) judged by
// sqlite3_changes, so the check and the write are atomic across connections and processes; the
// calls that must tell two outcomes apart (RemoveValue) or touch three tables (RemovePrefix) run
// in a BEGIN IMMEDIATE transaction. Keys are printable ASCII, so byte order (SQLite's BINARY
// collation) is the order ListValues promises and a prefix is a key range on the primary key.
//
// The tables are created when absent, by EnsureSchema(ddl) as the queue table is (tables that
// have never changed shape), without a bump of kSqliteSchemaVersion: they are new, and no table
// another component (or an adapter that predates them) reads mirrors them, so a file that holds
// them still opens in such an adapter and an older file simply gains them here. Should they ever
// change shape, they become a SqliteSchema component ("coordination", table
// coordination_leases) with a migration.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "adapters/sqlite/sqlite_database.h"
#include "ports/coordination.h"

namespace pwrcell::adapters {

// Thread-safe; several processes may open the same file. Errors are those of
// ports::Coordination: kUnavailable when the file is busy beyond the busy timeout or cannot be
// written (retry), kAborted on a version mismatch, kNotFound from RemoveValue, kInvalidArgument for
// a bad key, owner, prefix, version, ttl or interval.
// A call made by a thread that holds an SqliteUnitOfWork on the same database joins that unit: its
// writes become durable, and visible to other connections, only when the unit commits.
class SqliteCoordination final : public ports::Coordination {
 public:
  // Opens (creating if absent) the file at `path` and the coordination tables in it.
  // Errors: those of SqliteDatabase::Open and SqliteDatabase::EnsureSchema.
  static Result<std::unique_ptr<SqliteCoordination>> Open(const std::string& path);
  // The coordination tables in an already open database, shared with the device table and queues
  // in the same file. Errors: those of SqliteDatabase::EnsureSchema.
  static Result<std::unique_ptr<SqliteCoordination>> Create(std::shared_ptr<SqliteDatabase> database);

  Result<bool> TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now, Duration ttl) override;
  Result<bool> ReleaseLease(const std::string& name, const std::string& owner) override;
  Result<std::optional<ports::LeaseInfo>> GetLease(const std::string& name) override;

  Result<bool> TryThrottle(const std::string& key, Timestamp now, Duration interval) override;
  Status ClearThrottle(const std::string& key) override;

  Result<std::optional<ports::CoordinationValue>> GetValue(const std::string& key) override;
  Result<std::int64_t> PutValue(const std::string& key, const std::string& value,
                                std::int64_t expected_version) override;
  Status RemoveValue(const std::string& key, std::int64_t expected_version) override;
  Result<std::vector<std::pair<std::string, ports::CoordinationValue>>> ListValues(const std::string& prefix) override;

  Status RemovePrefix(const std::string& prefix) override;

 private:
  explicit SqliteCoordination(std::shared_ptr<SqliteDatabase> database) : database_(std::move(database)) {}

  std::shared_ptr<SqliteDatabase> database_;
};

}  // namespace pwrcell::adapters
