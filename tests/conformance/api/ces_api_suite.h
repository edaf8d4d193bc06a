// The CesApi contract (ports/ces_api.h, contracts/ces-api.md) as one suite, run on every
// implementation of the port, as concerto_api_suite.h does for Concerto:
//   - FakeCes, in conformance_tests (api/fake_api_backends.cc);
//   - CesClient talking to ces-sim, in client_tests (tests/integration/api_conformance_test.cc).
// Setup goes through CesBackend: the fake's helpers, or ces-sim's admin API.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "api/concerto_api_suite.h"  // Outage
#include "common/time.h"
#include "domain/ces_types.h"
#include "ports/ces_api.h"

namespace pwrcell::conformance {

// One request that reached the service.
struct CesRequest {
  std::string operation;                // "GetMetadata" or "GetStatus" (FakeCes::k*)
  std::vector<std::string> system_ids;  // the one system of GetMetadata, or the batch of GetStatus
  bool operator==(const CesRequest&) const = default;
};

inline void PrintTo(const CesRequest& request, std::ostream* os) {
  *os << request.operation << "(" << ::testing::PrintToString(request.system_ids) << ")";
}

// One backend per test; it knows no system of the test's at the start. Not thread-safe except Api().
class CesBackend {
 public:
  virtual ~CesBackend() = default;

  virtual ports::CesApi& Api() = 0;

  // CES learns about a system (or about a change to one it knows: replaces it). statusName is the
  // metadata's; lastCommunicationAt (whole seconds) as given, nullopt: CES never heard from it.
  virtual void AddSystem(const domain::SystemMetadata& metadata,
                         std::optional<Timestamp> last_communication_at = std::nullopt) = 0;
  // The statusName both endpoints report from now on (lastCommunicationAt unchanged).
  virtual void SetStatus(const std::string& system_id, const std::string& status_name) = 0;

  // The next `count` calls of `operation` are refused with `outage`. ces-sim's faults hit the next
  // requests whatever their operation: a test calls only `operation` until they are used up.
  virtual void FailNext(std::string_view operation, Outage outage, int count) = 0;
  // The requests that reached the service, refused ones included, oldest first.
  virtual std::vector<CesRequest> Requests() = 0;
};

struct CesBackendFactory {
  std::string name;  // a gtest name: letters and digits only
  std::function<std::unique_ptr<CesBackend>()> make;
  // Tests this backend is known to fail today (test name -> the bug, reported to its owner): they
  // are reported as skipped with the reason, never silently left out. Remove an entry with its fix.
  std::map<std::string, std::string, std::less<>> known_bugs = {};
};

inline void PrintTo(const CesBackendFactory& backend, std::ostream* os) {
  *os << backend.name;
}

inline std::string CesBackendName(const ::testing::TestParamInfo<CesBackendFactory>& info) {
  return info.param.name;
}

class CesApiConformance : public ::testing::TestWithParam<CesBackendFactory> {
 protected:
  void SetUp() override {
    const std::string_view test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (auto bug = GetParam().known_bugs.find(test.substr(0, test.find('/'))); bug != GetParam().known_bugs.end()) {
      GTEST_SKIP() << "known bug of " << GetParam().name << ": " << bug->second;
    }
    backend_ = GetParam().make();
    ASSERT_NE(backend_, nullptr) << "backend " << GetParam().name << " could not start";
  }
  ports::CesApi& api() { return backend_->Api(); }
  CesBackend& backend() { return *backend_; }

 private:
  std::unique_ptr<CesBackend> backend_;
};

}  // namespace pwrcell::conformance
