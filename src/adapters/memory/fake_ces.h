// An in-memory CES API (contracts/ces-api.md) that keeps the systems a test gives it, so that
// processes can be tested without a server. It models the API's semantics, not its transport:
// no key, no rate limit; use FailNext to play 5xx, 429 and timeouts.
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ports/ces_api.h"

namespace pwrcell::adapters {

// One call the fake received, in arrival order.
struct CesCall {
  std::string operation;                // FakeCes::kGetMetadata or FakeCes::kGetStatus
  std::vector<std::string> system_ids;  // the one system of GetMetadata, or the batch of GetStatus
  bool operator==(const CesCall&) const = default;
};

// Thread-safe: every call takes one mutex.
// Errors: GetMetadata kNotFound for an unknown systemId; GetStatus kInvalidArgument for more than
// ports::kMaxStatusBatch ids (unknown ids are listed in not_found, not an error); kInvalidArgument
// for an empty systemId, and in GetStatus for one holding ',' (the batch separator of
// contracts/ces-api.md: no request can ask for it).
// The same behaviour is checked on CesClient against ces-sim by the conformance suite
// tests/conformance/api/ces_api_suite.cc: change both together.
// Every call, failed or not, is logged (Calls) and counted (CallCount).
class FakeCes final : public ports::CesApi {
 public:
  static constexpr std::string_view kGetMetadata = "GetMetadata";
  static constexpr std::string_view kGetStatus = "GetStatus";

  // ports::CesApi
  Result<domain::SystemMetadata> GetMetadata(const std::string& system_id) override;
  // Statuses in the order asked (each system once); unknown ids in not_found, in the order asked.
  Result<domain::CesStatusBatch> GetStatus(const std::vector<std::string>& system_ids) override;

  // ---- Test helpers ----

  // Adds the system, or replaces it (same system_id): CES learnt about a change in the field.
  void AddSystem(domain::SystemMetadata metadata);
  // Sets the statusName both endpoints report (and lastCommunicationAt for the status one).
  // The system must have been added first (assert): CES has no status for a system it lacks.
  void SetStatus(const std::string& system_id, const std::string& status_name,
                 std::optional<Timestamp> last_communication_at = std::nullopt);

  // The next `count` calls of `operation` fail with `status` and return nothing else.
  void FailNext(std::string_view operation, Status status, int count = 1);

  std::vector<CesCall> Calls() const;
  int CallCount(std::string_view operation) const;

 private:
  struct Fault {
    Status status;
    int remaining = 0;
  };
  struct System {
    domain::SystemMetadata metadata;
    std::optional<Timestamp> last_communication_at;
  };

  // Logs the call and pops its next queued fault, if any. Caller holds mutex_.
  std::optional<Status> BeginCall(std::string_view operation, std::vector<std::string> system_ids);

  mutable std::mutex mutex_;
  std::map<std::string, System> systems_;
  std::vector<CesCall> calls_;
  std::map<std::string, std::deque<Fault>, std::less<>> faults_;
};

}  // namespace pwrcell::adapters
