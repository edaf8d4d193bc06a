// An in-memory DeviceStore: the reference backend of the conformance suite and the store of
// unit tests. Not durable.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ports/device_store.h"

namespace pwrcell::adapters {

// A map of remote_id -> record behind one mutex, with secondary indexes (inverter RCP number ->
// remote_ids, site id -> remote_ids) updated by the same Put / Remove that changes the record.
// Thread-safe. Records are copied in and out, so callers never share state with the store.
// Errors are those of ports::DeviceStore (kInvalidArgument, kAborted, kNotFound); it is never
// kUnavailable.
class MemoryDeviceStore final : public ports::DeviceStore {
 public:
  MemoryDeviceStore() = default;

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
  // kInvalidArgument also for a negative version.
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) override;
  Status Remove(const std::string& remote_id, std::int64_t expected_version) override;

 private:
  using Index = std::map<std::string, std::set<std::string>>;  // key -> remote_ids, both ordered

  // Adds / removes `record` under its keys in every index. Callers hold mutex_.
  void IndexRecord(const domain::DeviceRecord& record);
  void UnindexRecord(const domain::DeviceRecord& record);
  // The records of `index[key]`, in remote_id order. Callers hold mutex_.
  std::vector<domain::DeviceRecord> Lookup(const Index& index, const std::string& key) const;

  std::mutex mutex_;
  std::map<std::string, domain::DeviceRecord> records_;  // ordered, so List() needs no sort
  Index by_rcpn_;                                        // guarded by mutex_
  Index by_site_;                                        // guarded by mutex_
};

}  // namespace pwrcell::adapters
