#include "adapters/sqlite/sqlite_coordination.h"

#include <string_view>

namespace pwrcell::adapters {
namespace {

using ports::CoordinationValue;
using ports::LeaseInfo;

// WITHOUT ROWID: each table is its primary key's b-tree, which every statement here looks up.
constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS coordination_leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coordination_throttles (
  key TEXT PRIMARY KEY,
  at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coordination_values (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL,
  version INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// The keys that start with a (checked, printable ASCII) prefix are the range [prefix, End(prefix)):
// the prefix with its last byte incremented, or for the empty prefix "\x7f", above every key.
std::string RangeEnd(std::string prefix) {
  if (prefix.empty()) return "\x7f";
  ++prefix.back();  // at most 0x7e + 1: still one byte of valid UTF-8
  return prefix;
}

}  // namespace

Result<std::unique_ptr<SqliteCoordination>> SqliteCoordination::Open(const std::string& path) {
  auto database = SqliteDatabase::Open(path);
  if (!database.ok()) return database.status();
  return Create(std::move(database).value());
}

Result<std::unique_ptr<SqliteCoordination>> SqliteCoordination::Create(std::shared_ptr<SqliteDatabase> database) {
  PWRCELL_RETURN_IF_ERROR(database->EnsureSchema(kSchema).WithContext("coordination tables in " + database->Path()));
  return std::unique_ptr<SqliteCoordination>(new SqliteCoordination(std::move(database)));
}

// ---- Leases ----

Result<bool> SqliteCoordination::TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now,
                                                 Duration ttl) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(owner, "lease owner"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationSpan(now, ttl, /*forward=*/true, "lease ttl"));
  auto session = database_->Lock();
  // Taken when absent; otherwise the update happens only when the lease has expired or is ours,
  // and sqlite3_changes says which: one statement, so two connections cannot both take it.
  auto acquire = session.Prepare(
      "INSERT INTO coordination_leases (name, owner, expires_at) VALUES (?1, ?2, ?4) "
      "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
      "WHERE coordination_leases.expires_at <= ?3 OR coordination_leases.owner = excluded.owner");
  if (!acquire.ok()) return acquire.status();
  acquire->BindText(1, name).BindText(2, owner).BindInt64(3, ToUnixMillis(now));
  acquire->BindInt64(4, ToUnixMillis(now) + ttl.count());
  PWRCELL_RETURN_IF_ERROR(acquire->Run().WithContext("acquiring lease " + name));
  return session.Changes() > 0;
}

Result<bool> SqliteCoordination::ReleaseLease(const std::string& name, const std::string& owner) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(owner, "lease owner"));
  auto session = database_->Lock();
  auto release = session.Prepare("DELETE FROM coordination_leases WHERE name = ?1 AND owner = ?2");
  if (!release.ok()) return release.status();
  release->BindText(1, name).BindText(2, owner);
  PWRCELL_RETURN_IF_ERROR(release->Run().WithContext("releasing lease " + name));
  return session.Changes() > 0;
}

Result<std::optional<LeaseInfo>> SqliteCoordination::GetLease(const std::string& name) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT owner, expires_at FROM coordination_leases WHERE name = ?1");
  if (!query.ok()) return query.status();
  query->BindText(1, name);
  auto row = query->Step();
  if (!row.ok()) return row.status().WithContext("reading lease " + name);
  if (!*row) return std::optional<LeaseInfo>();
  return std::optional<LeaseInfo>(LeaseInfo{query->ColumnText(0), FromUnixMillis(query->ColumnInt64(1))});
}

// ---- Throttles ----

Result<bool> SqliteCoordination::TryThrottle(const std::string& key, Timestamp now, Duration interval) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "throttle key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationSpan(now, interval, /*forward=*/false, "throttle interval"));
  auto session = database_->Lock();
  // As for leases: the condition is part of the one statement that writes.
  auto throttle = session.Prepare(
      "INSERT INTO coordination_throttles (key, at) VALUES (?1, ?2) "
      "ON CONFLICT (key) DO UPDATE SET at = excluded.at WHERE coordination_throttles.at <= ?3");
  if (!throttle.ok()) return throttle.status();
  throttle->BindText(1, key).BindInt64(2, ToUnixMillis(now)).BindInt64(3, ToUnixMillis(now) - interval.count());
  PWRCELL_RETURN_IF_ERROR(throttle->Run().WithContext("throttle " + key));
  return session.Changes() > 0;
}

Status SqliteCoordination::ClearThrottle(const std::string& key) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "throttle key"));
  auto session = database_->Lock();
  auto clear = session.Prepare("DELETE FROM coordination_throttles WHERE key = ?1");
  if (!clear.ok()) return clear.status();
  clear->BindText(1, key);
  return clear->Run().WithContext("clearing throttle " + key);
}

// ---- Versioned values ----

Result<std::optional<CoordinationValue>> SqliteCoordination::GetValue(const std::string& key) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  auto session = database_->Lock();
  auto query = session.Prepare("SELECT value, version FROM coordination_values WHERE key = ?1");
  if (!query.ok()) return query.status();
  query->BindText(1, key);
  auto row = query->Step();
  if (!row.ok()) return row.status().WithContext("reading value " + key);
  if (!*row) return std::optional<CoordinationValue>();
  return std::optional<CoordinationValue>(CoordinationValue{query->ColumnBlob(0), query->ColumnInt64(1)});
}

Result<std::int64_t> SqliteCoordination::PutValue(const std::string& key, const std::string& value,
                                                  std::int64_t expected_version) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationVersion(expected_version));
  auto session = database_->Lock();
  // One statement each, so the version check and the write are atomic across processes too.
  auto write = session.Prepare(
      expected_version == 0
          ? "INSERT INTO coordination_values (key, value, version) VALUES (?1, ?2, ?3 + 1) ON CONFLICT (key) DO NOTHING"
          : "UPDATE coordination_values SET value = ?2, version = ?3 + 1 WHERE key = ?1 AND version = ?3");
  if (!write.ok()) return write.status();
  write->BindText(1, key).BindBlob(2, value).BindInt64(3, expected_version);
  PWRCELL_RETURN_IF_ERROR(write->Run().WithContext("writing value " + key));
  if (session.Changes() == 0) {
    return AbortedError(expected_version == 0
                            ? "value " + key + " already exists"
                            : "value " + key + " is no longer at version " + std::to_string(expected_version));
  }
  return expected_version + 1;
}

Status SqliteCoordination::RemoveValue(const std::string& key, std::int64_t expected_version) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationVersion(expected_version));
  auto session = database_->Lock();
  // A transaction, so that "no row deleted" is told apart as gone vs. other version consistently.
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status().WithContext("removing value " + key);
  {
    auto remove = session.Prepare("DELETE FROM coordination_values WHERE key = ?1 AND version = ?2");
    if (!remove.ok()) return remove.status();
    remove->BindText(1, key).BindInt64(2, expected_version);
    PWRCELL_RETURN_IF_ERROR(remove->Run().WithContext("removing value " + key));
  }
  if (session.Changes() == 0) {
    auto exists = session.Prepare("SELECT 1 FROM coordination_values WHERE key = ?1");
    if (!exists.ok()) return exists.status();
    exists->BindText(1, key);
    auto row = exists->Step();
    if (!row.ok()) return row.status().WithContext("removing value " + key);
    if (!*row) return NotFoundError("no value " + key);
    return AbortedError("value " + key + " is no longer at version " + std::to_string(expected_version));
  }
  return transaction->Commit().WithContext("removing value " + key);
}

Result<std::vector<std::pair<std::string, CoordinationValue>>> SqliteCoordination::ListValues(
    const std::string& prefix) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(prefix, "prefix", /*may_be_empty=*/true));
  auto session = database_->Lock();
  auto query =
      session.Prepare("SELECT key, value, version FROM coordination_values WHERE key >= ?1 AND key < ?2 ORDER BY key");
  if (!query.ok()) return query.status();
  query->BindText(1, prefix).BindText(2, RangeEnd(prefix));
  std::vector<std::pair<std::string, CoordinationValue>> found;
  while (true) {
    auto row = query->Step();
    if (!row.ok()) return row.status().WithContext("listing values " + prefix);
    if (!*row) break;
    found.emplace_back(query->ColumnText(0), CoordinationValue{query->ColumnBlob(1), query->ColumnInt64(2)});
  }
  return found;
}

Status SqliteCoordination::RemovePrefix(const std::string& prefix) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(prefix, "prefix"));
  const std::string end = RangeEnd(prefix);
  auto session = database_->Lock();
  auto transaction = session.BeginImmediate();  // all three tables or none
  if (!transaction.ok()) return transaction.status().WithContext("removing prefix " + prefix);
  for (const std::string_view sql : {"DELETE FROM coordination_leases WHERE name >= ?1 AND name < ?2",
                                     "DELETE FROM coordination_throttles WHERE key >= ?1 AND key < ?2",
                                     "DELETE FROM coordination_values WHERE key >= ?1 AND key < ?2"}) {
    auto remove = session.Prepare(sql);
    if (!remove.ok()) return remove.status();
    remove->BindText(1, prefix).BindText(2, end);
    PWRCELL_RETURN_IF_ERROR(remove->Run().WithContext("removing prefix " + prefix));
  }
  return transaction->Commit().WithContext("removing prefix " + prefix);
}

}  // namespace pwrcell::adapters
