#include "adapters/memory/memory_device_store.h"

namespace pwrcell::adapters {

using domain::DeviceRecord;

Result<std::optional<DeviceRecord>> MemoryDeviceStore::Get(const std::string& remote_id) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(remote_id);
  if (it == records_.end()) return std::optional<DeviceRecord>();
  return std::optional<DeviceRecord>(it->second);
}

Result<std::optional<DeviceRecord>> MemoryDeviceStore::FindByInverterRcpn(const std::string& rcpn) {
  if (rcpn.empty()) return std::optional<DeviceRecord>();
  std::lock_guard lock(mutex_);
  // A linear scan in remote_id order gives "smallest remote_id wins" for free; a fake
  // holds a few thousand records at most.
  for (const auto& [id, record] : records_) {
    if (record.inverter_rcpn == rcpn) return std::optional<DeviceRecord>(record);
  }
  return std::optional<DeviceRecord>();
}

Result<std::vector<DeviceRecord>> MemoryDeviceStore::List() {
  std::lock_guard lock(mutex_);
  std::vector<DeviceRecord> all;
  all.reserve(records_.size());
  for (const auto& [id, record] : records_) all.push_back(record);
  return all;
}

Result<DeviceRecord> MemoryDeviceStore::Put(const DeviceRecord& record) {
  if (record.remote_id.empty()) return InvalidArgumentError("device record without remote_id");
  if (record.version < 0) return InvalidArgumentError("negative version for device " + record.remote_id);
  std::lock_guard lock(mutex_);
  auto it = records_.find(record.remote_id);
  if (record.version == 0) {
    if (it != records_.end()) return AbortedError("device " + record.remote_id + " already exists");
  } else if (it == records_.end() || it->second.version != record.version) {
    return AbortedError("device " + record.remote_id + " is no longer at version " + std::to_string(record.version));
  }
  DeviceRecord stored = record;
  stored.version = record.version + 1;
  records_.insert_or_assign(record.remote_id, stored);
  return stored;
}

Status MemoryDeviceStore::Remove(const std::string& remote_id, std::int64_t expected_version) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(remote_id);
  if (it == records_.end()) return NotFoundError("no device " + remote_id);
  if (it->second.version != expected_version) {
    return AbortedError("device " + remote_id + " is no longer at version " + std::to_string(expected_version));
  }
  records_.erase(it);
  return Status::Ok();
}

}  // namespace pwrcell::adapters
