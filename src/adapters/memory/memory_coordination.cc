#include "adapters/memory/memory_coordination.h"

#include <string_view>

namespace pwrcell::adapters {
namespace {

using ports::CoordinationValue;
using ports::LeaseInfo;

// Erases every entry of `map` whose key starts with `prefix`.
template <typename Map>
void ErasePrefix(Map& map, const std::string& prefix) {
  auto it = map.lower_bound(prefix);
  while (it != map.end() && std::string_view(it->first).starts_with(prefix)) it = map.erase(it);
}

}  // namespace

Result<bool> MemoryCoordination::TryAcquireLease(const std::string& name, const std::string& owner, Timestamp now,
                                                 Duration ttl) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(owner, "lease owner"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationSpan(now, ttl, /*forward=*/true, "lease ttl"));
  std::lock_guard lock(mutex_);
  auto it = leases_.find(name);
  if (it != leases_.end() && it->second.owner != owner && it->second.expires_at > now) return false;
  leases_.insert_or_assign(name, LeaseInfo{owner, now + ttl});
  return true;
}

Result<bool> MemoryCoordination::ReleaseLease(const std::string& name, const std::string& owner) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(owner, "lease owner"));
  std::lock_guard lock(mutex_);
  auto it = leases_.find(name);
  if (it == leases_.end() || it->second.owner != owner) return false;
  leases_.erase(it);
  return true;
}

Result<std::optional<LeaseInfo>> MemoryCoordination::GetLease(const std::string& name) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(name, "lease name"));
  std::lock_guard lock(mutex_);
  auto it = leases_.find(name);
  if (it == leases_.end()) return std::optional<LeaseInfo>();
  return std::optional<LeaseInfo>(it->second);
}

Result<bool> MemoryCoordination::TryThrottle(const std::string& key, Timestamp now, Duration interval) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "throttle key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationSpan(now, interval, /*forward=*/false, "throttle interval"));
  std::lock_guard lock(mutex_);
  auto it = throttles_.find(key);
  if (it != throttles_.end() && it->second > now - interval) return false;
  throttles_.insert_or_assign(key, now);
  return true;
}

Status MemoryCoordination::ClearThrottle(const std::string& key) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "throttle key"));
  std::lock_guard lock(mutex_);
  throttles_.erase(key);
  return Status::Ok();
}

Result<std::optional<CoordinationValue>> MemoryCoordination::GetValue(const std::string& key) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  std::lock_guard lock(mutex_);
  auto it = values_.find(key);
  if (it == values_.end()) return std::optional<CoordinationValue>();
  return std::optional<CoordinationValue>(it->second);
}

Result<std::int64_t> MemoryCoordination::PutValue(const std::string& key, const std::string& value,
                                                  std::int64_t expected_version) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationVersion(expected_version));
  std::lock_guard lock(mutex_);
  auto it = values_.find(key);
  if (expected_version == 0) {
    if (it != values_.end()) return AbortedError("value " + key + " already exists");
  } else if (it == values_.end() || it->second.version != expected_version) {
    return AbortedError("value " + key + " is no longer at version " + std::to_string(expected_version));
  }
  const std::int64_t version = expected_version + 1;
  values_.insert_or_assign(key, CoordinationValue{value, version});
  return version;
}

Status MemoryCoordination::RemoveValue(const std::string& key, std::int64_t expected_version) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(key, "value key"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationVersion(expected_version));
  std::lock_guard lock(mutex_);
  auto it = values_.find(key);
  if (it == values_.end()) return NotFoundError("no value " + key);
  if (it->second.version != expected_version) {
    return AbortedError("value " + key + " is no longer at version " + std::to_string(expected_version));
  }
  values_.erase(it);
  return Status::Ok();
}

Result<std::vector<std::pair<std::string, CoordinationValue>>> MemoryCoordination::ListValues(
    const std::string& prefix) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(prefix, "prefix", /*may_be_empty=*/true));
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, CoordinationValue>> found;
  for (auto it = values_.lower_bound(prefix); it != values_.end() && it->first.starts_with(prefix); ++it) {
    found.emplace_back(it->first, it->second);
  }
  return found;
}

Status MemoryCoordination::RemovePrefix(const std::string& prefix) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckCoordinationKey(prefix, "prefix"));
  std::lock_guard lock(mutex_);
  ErasePrefix(leases_, prefix);
  ErasePrefix(throttles_, prefix);
  ErasePrefix(values_, prefix);
  return Status::Ok();
}

}  // namespace pwrcell::adapters
