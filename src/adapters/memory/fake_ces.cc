#include "adapters/memory/fake_ces.h"

#include <algorithm>
#include <cassert>
#include <set>
#include <utility>

namespace pwrcell::adapters {

std::optional<Status> FakeCes::BeginCall(std::string_view operation, std::vector<std::string> system_ids) {
  calls_.push_back(CesCall{std::string(operation), std::move(system_ids)});
  auto queued = faults_.find(operation);
  if (queued == faults_.end() || queued->second.empty()) return std::nullopt;
  Fault& next = queued->second.front();
  Status status = next.status;
  if (--next.remaining <= 0) queued->second.pop_front();
  return status;
}

Result<domain::SystemMetadata> FakeCes::GetMetadata(const std::string& system_id) {
  std::lock_guard lock(mutex_);
  if (auto fault = BeginCall(kGetMetadata, {system_id})) return *fault;
  if (system_id.empty()) return InvalidArgumentError("CES metadata: empty systemId");
  auto it = systems_.find(system_id);
  if (it == systems_.end()) return NotFoundError("CES knows no system '" + system_id + "'");
  return it->second.metadata;
}

Result<domain::CesStatusBatch> FakeCes::GetStatus(const std::vector<std::string>& system_ids) {
  std::lock_guard lock(mutex_);
  if (auto fault = BeginCall(kGetStatus, system_ids)) return *fault;
  if (system_ids.size() > ports::kMaxStatusBatch) {
    return InvalidArgumentError("at most " + std::to_string(ports::kMaxStatusBatch) + " systemIds per call, got " +
                                std::to_string(system_ids.size()));
  }
  for (const std::string& id : system_ids) {
    // The batch travels as systemIds=a,b: an id holding the separator would be read as two.
    if (id.empty() || id.find(',') != std::string::npos) {
      return InvalidArgumentError("CES status: systemId '" + id + "' is empty or holds ','");
    }
  }
  domain::CesStatusBatch batch;
  std::set<std::string_view> seen;
  for (const std::string& id : system_ids) {
    if (!seen.insert(id).second) continue;
    auto it = systems_.find(id);
    if (it == systems_.end()) {
      batch.not_found.push_back(id);
      continue;
    }
    batch.statuses.push_back({id, it->second.metadata.status_name, it->second.last_communication_at});
  }
  return batch;
}

void FakeCes::AddSystem(domain::SystemMetadata metadata) {
  std::lock_guard lock(mutex_);
  std::string id = metadata.system_id;
  System& system = systems_[std::move(id)];
  system.metadata = std::move(metadata);
}

void FakeCes::SetStatus(const std::string& system_id, const std::string& status_name,
                        std::optional<Timestamp> last_communication_at) {
  std::lock_guard lock(mutex_);
  auto it = systems_.find(system_id);
  assert(it != systems_.end() && "FakeCes::SetStatus: AddSystem first");
  if (it == systems_.end()) return;
  it->second.metadata.status_name = status_name;
  it->second.last_communication_at = last_communication_at;
}

void FakeCes::FailNext(std::string_view operation, Status status, int count) {
  assert((operation == kGetMetadata || operation == kGetStatus) && "unknown FakeCes operation");
  assert(!status.ok() && "a fault must carry an error");
  if (count < 1) return;
  std::lock_guard lock(mutex_);
  auto queued = faults_.find(operation);
  if (queued == faults_.end()) queued = faults_.emplace(std::string(operation), std::deque<Fault>{}).first;
  queued->second.push_back(Fault{std::move(status), count});
}

std::vector<CesCall> FakeCes::Calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

int FakeCes::CallCount(std::string_view operation) const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(
      std::count_if(calls_.begin(), calls_.end(), [&](const CesCall& call) { return call.operation == operation; }));
}

}  // namespace pwrcell::adapters
