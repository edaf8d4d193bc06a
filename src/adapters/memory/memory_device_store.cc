#include "adapters/memory/memory_device_store.h"

#include <algorithm>

#include "domain/remote_state.h"

namespace pwrcell::adapters {
namespace {

using domain::DeviceRecord;

// The index keys of a record; empty keys are never indexed, so they match nothing.
// Distinct, so that unindexing a record removes each of its keys once.
std::set<std::string> RcpnKeys(const DeviceRecord& record) {
  std::set<std::string> keys;
  for (const auto& rcpn : record.inverter_rcpns) {
    if (!rcpn.empty()) keys.insert(rcpn);
  }
  return keys;
}

std::string SiteKey(const DeviceRecord& record) {
  return record.site ? record.site->site_id : std::string();
}

void Add(std::map<std::string, std::set<std::string>>& index, const std::string& key, const std::string& remote_id) {
  if (!key.empty()) index[key].insert(remote_id);
}

void Drop(std::map<std::string, std::set<std::string>>& index, const std::string& key, const std::string& remote_id) {
  auto it = index.find(key);
  if (it == index.end()) return;
  it->second.erase(remote_id);
  if (it->second.empty()) index.erase(it);
}

// `record` as a Put stores it over `current` (ports/device_store.h, "Hot fields"): last_heard_at
// never moves backwards, a stored reading newer than the record's is kept, and the reading of an
// inverter the record neither reports nor lists is dropped.
DeviceRecord MergeHotFields(DeviceRecord record, const DeviceRecord& current) {
  if (current.last_heard_at) record.RaiseLastHeard(*current.last_heard_at);
  for (const auto& kept : current.inverter_readings) {
    const bool reported = std::any_of(record.inverter_readings.begin(), record.inverter_readings.end(),
                                      [&](const domain::InverterReading& r) { return r.rcpn == kept.rcpn; });
    const bool listed =
        std::find(record.inverter_rcpns.begin(), record.inverter_rcpns.end(), kept.rcpn) != record.inverter_rcpns.end();
    if (!reported && !listed) continue;
    // RecordInverterReading keeps the record's reading when it is at least as new.
    auto same = std::find_if(record.inverter_readings.begin(), record.inverter_readings.end(),
                             [&](const domain::InverterReading& r) { return r.rcpn == kept.rcpn; });
    if (same != record.inverter_readings.end() && same->at >= kept.at) continue;
    record.RecordInverterReading(kept);
  }
  return record;
}

bool Matches(const ports::DeviceFilter& filter, const DeviceRecord& record) {
  if (filter.is_simulated && record.is_simulated != *filter.is_simulated) return false;
  if (filter.remote_state && record.remote_state != filter.remote_state) return false;
  return true;
}

bool ApplyHeard(DeviceRecord& record, Timestamp heard_at, const std::optional<domain::InverterReading>& reading) {
  bool changed = record.RaiseLastHeard(heard_at);
  if (reading && record.RecordInverterReading(*reading)) changed = true;
  return changed;
}

}  // namespace

void MemoryDeviceStore::IndexRecord(const DeviceRecord& record) {
  for (const auto& rcpn : RcpnKeys(record)) Add(by_rcpn_, rcpn, record.remote_id);
  Add(by_site_, SiteKey(record), record.remote_id);
}

void MemoryDeviceStore::UnindexRecord(const DeviceRecord& record) {
  for (const auto& rcpn : RcpnKeys(record)) Drop(by_rcpn_, rcpn, record.remote_id);
  Drop(by_site_, SiteKey(record), record.remote_id);
}

std::vector<DeviceRecord> MemoryDeviceStore::Lookup(const Index& index, const std::string& key) const {
  std::vector<DeviceRecord> found;
  auto it = index.find(key);
  if (key.empty() || it == index.end()) return found;
  found.reserve(it->second.size());
  for (const auto& remote_id : it->second) found.push_back(records_.at(remote_id));
  return found;
}

Result<std::optional<DeviceRecord>> MemoryDeviceStore::Get(const std::string& remote_id) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(remote_id);
  if (it == records_.end()) return std::optional<DeviceRecord>();
  return std::optional<DeviceRecord>(it->second);
}

Result<std::optional<DeviceRecord>> MemoryDeviceStore::FindByInverterRcpn(const std::string& rcpn) {
  std::lock_guard lock(mutex_);
  // The index's sets are ordered, so the first is the smallest remote_id.
  auto it = by_rcpn_.find(rcpn);
  if (rcpn.empty() || it == by_rcpn_.end()) return std::optional<DeviceRecord>();
  return std::optional<DeviceRecord>(records_.at(*it->second.begin()));
}

Result<std::optional<ports::DeviceKey>> MemoryDeviceStore::FindKeyByInverterRcpn(const std::string& rcpn) {
  std::lock_guard lock(mutex_);
  auto it = by_rcpn_.find(rcpn);
  if (rcpn.empty() || it == by_rcpn_.end()) return std::optional<ports::DeviceKey>();
  const DeviceRecord& found = records_.at(*it->second.begin());
  return std::optional<ports::DeviceKey>(ports::DeviceKey{found.remote_id, found.version});
}

Result<bool> MemoryDeviceStore::RecordHeard(const std::string& remote_id, Timestamp heard_at,
                                            const std::optional<domain::InverterReading>& reading) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(remote_id);
  if (it == records_.end()) return NotFoundError("no device " + remote_id);
  return ApplyHeard(it->second, heard_at, reading);
}

Status MemoryDeviceStore::RecordHeardBatch(const std::vector<ports::HeardUpdate>& updates) {
  std::lock_guard lock(mutex_);
  for (const auto& update : updates) {
    auto it = records_.find(update.remote_id);
    if (it != records_.end()) ApplyHeard(it->second, update.heard_at, update.reading);
  }
  return Status::Ok();
}

Result<std::vector<DeviceRecord>> MemoryDeviceStore::List() {
  std::lock_guard lock(mutex_);
  std::vector<DeviceRecord> all;
  all.reserve(records_.size());
  for (const auto& [id, record] : records_) all.push_back(record);
  return all;
}

Result<std::vector<DeviceRecord>> MemoryDeviceStore::ListPage(const ports::DeviceFilter& filter,
                                                              const std::string& after_remote_id, std::size_t limit) {
  std::lock_guard lock(mutex_);
  std::vector<DeviceRecord> page;
  for (auto it = records_.upper_bound(after_remote_id); it != records_.end() && page.size() < limit; ++it) {
    if (Matches(filter, it->second)) page.push_back(it->second);
  }
  return page;
}

Result<std::vector<ports::DeviceKey>> MemoryDeviceStore::ListKeys(const ports::DeviceFilter& filter,
                                                                  const std::string& after_remote_id,
                                                                  std::size_t limit) {
  std::lock_guard lock(mutex_);
  std::vector<ports::DeviceKey> page;
  for (auto it = records_.upper_bound(after_remote_id); it != records_.end() && page.size() < limit; ++it) {
    if (Matches(filter, it->second)) page.push_back({it->first, it->second.version});
  }
  return page;
}

Result<std::int64_t> MemoryDeviceStore::Count(const ports::DeviceFilter& filter) {
  std::lock_guard lock(mutex_);
  std::int64_t count = 0;
  for (const auto& [id, record] : records_) count += Matches(filter, record) ? 1 : 0;
  return count;
}

Result<std::vector<ports::DeviceTally>> MemoryDeviceStore::Tally() {
  std::lock_guard lock(mutex_);
  std::vector<ports::DeviceTally> tallies;
  for (const auto& [id, record] : records_) {
    auto it = std::find_if(tallies.begin(), tallies.end(), [&](const ports::DeviceTally& t) {
      return t.is_simulated == record.is_simulated && t.remote_state == record.remote_state &&
             t.commissioning == record.commissioning.state;
    });
    if (it == tallies.end()) {
      tallies.push_back({record.is_simulated, record.remote_state, record.commissioning.state, 1});
    } else {
      ++it->count;
    }
  }
  return tallies;
}

Result<std::vector<DeviceRecord>> MemoryDeviceStore::ListUnsettled(Timestamp offline_cutoff,
                                                                   const std::string& after_remote_id,
                                                                   std::size_t limit) {
  std::lock_guard lock(mutex_);
  std::vector<DeviceRecord> page;
  for (auto it = records_.upper_bound(after_remote_id); it != records_.end() && page.size() < limit; ++it) {
    if (!domain::EvaluationSettled(it->second, offline_cutoff)) page.push_back(it->second);
  }
  return page;
}

Result<std::vector<DeviceRecord>> MemoryDeviceStore::ListBySite(const std::string& site_id) {
  std::lock_guard lock(mutex_);
  return Lookup(by_site_, site_id);
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
  DeviceRecord stored = it == records_.end() ? record : MergeHotFields(record, it->second);
  if (it != records_.end()) UnindexRecord(it->second);
  stored.version = record.version + 1;
  records_.insert_or_assign(record.remote_id, stored);
  IndexRecord(stored);
  return stored;
}

Status MemoryDeviceStore::Remove(const std::string& remote_id, std::int64_t expected_version) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(remote_id);
  if (it == records_.end()) return NotFoundError("no device " + remote_id);
  if (it->second.version != expected_version) {
    return AbortedError("device " + remote_id + " is no longer at version " + std::to_string(expected_version));
  }
  UnindexRecord(it->second);
  records_.erase(it);
  return Status::Ok();
}

}  // namespace pwrcell::adapters
