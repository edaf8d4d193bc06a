// An in-memory DeviceStore: the reference backend of the conformance suite and the store of
// unit tests. Not durable.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ports/device_store.h"

namespace pwrcell::adapters {

// A map of remote_id -> record behind one mutex. Thread-safe. Records are copied in and out,
// so callers never share state with the store. Errors are those of ports::DeviceStore
// (kInvalidArgument, kAborted, kNotFound); it is never kUnavailable.
class MemoryDeviceStore final : public ports::DeviceStore {
 public:
  MemoryDeviceStore() = default;

  Result<std::optional<domain::DeviceRecord>> Get(const std::string& remote_id) override;
  // An empty rcpn matches nothing: an empty inverter_rcpn means "metadata not fetched yet".
  Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string& rcpn) override;
  Result<std::vector<domain::DeviceRecord>> List() override;
  // kInvalidArgument also for a negative version.
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord& record) override;
  Status Remove(const std::string& remote_id, std::int64_t expected_version) override;

 private:
  std::mutex mutex_;
  std::map<std::string, domain::DeviceRecord> records_;  // ordered, so List() needs no sort
};

}  // namespace pwrcell::adapters
