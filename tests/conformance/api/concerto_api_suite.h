// The ConcertoApi contract (ports/concerto_api.h, contracts/concerto.graphql, contracts/concerto-api.md)
// as one suite, run on every implementation of the port (Arrow's pattern, as backends.h for the stores):
//   - FakeConcerto, in conformance_tests (api/fake_api_backends.cc);
//   - ConcertoClient talking to concerto-sim, in client_tests (tests/integration/api_conformance_test.cc),
//     since starting a process is an integration test's business.
// The process tests trust FakeConcerto; this suite is what keeps it honest: a behaviour the fake and
// the simulator disagree on fails on one of the two backends.
//
// What a test needs beyond the port goes through ConcertoBackend: what an operator does in
// Concerto's UI (enroll, remove), outages (fault injection on the fake, the admin API on the
// simulator) and a look at what was stored. Tests use only this interface and the port, and never
// assume the shape of an id.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "domain/concerto_types.h"
#include "ports/concerto_api.h"

namespace pwrcell::conformance {

// A transient refusal that takes effect before the service does anything.
enum class Outage {
  kServerError,  // HTTP 5xx: the port answers kUnavailable
  kRateLimited,  // HTTP 429: the port answers kResourceExhausted
};

struct EnrollRequest {
  std::string remote_id;
  std::string name;
  std::optional<std::string> adapter_name;  // nullopt: no adapter serves it
  bool simulated = false;
  std::optional<double> rated_power_kw;
};

// One backend per test, fresh (nothing enrolled) at the start. Not thread-safe except Api().
class ConcertoBackend {
 public:
  virtual ~ConcertoBackend() = default;

  // The implementation under test. The same object for the whole test; thread-safe as the port says.
  virtual ports::ConcertoApi& Api() = 0;

  // What an operator does by hand: a SYSTEM asset with no site and no parent. Returns its id
  // ("" with a recorded test failure when the backend refused).
  virtual std::string EnrollSystem(const EnrollRequest& request) = 0;
  // Deletes an asset as an operator does; its children lose their parent link. False when unknown.
  virtual bool RemoveAsset(const std::string& asset_id) = 0;
  // An id of the form this backend hands out that names no site and no asset.
  virtual std::string UnusedId() = 0;

  // Operation names are those of FakeConcerto::k* (equal to the GraphQL operationName the client
  // sends): "CreateSite", "UpdateAssetRemoteState", ...
  // The next `count` calls of `operation` are refused with `outage` before they take effect.
  virtual void FailNext(std::string_view operation, Outage outage, int count) = 0;
  // The next call of `operation` takes effect but its answer is lost: the caller gets
  // kDeadlineExceeded, and by the time the call returns its effect is visible.
  virtual void LoseNextResponse(std::string_view operation) = 0;
  // Calls of `operation` that reached the service, refused ones included.
  virtual int CallCount(std::string_view operation) = 0;

  // Stored telemetry points, in the order they were stored.
  virtual std::vector<domain::TelemetryPoint> Points() = 0;
  // Successful remote-state updates, oldest first.
  virtual std::vector<domain::RemoteStateUpdate> AssetRemoteStateHistory() = 0;
  virtual std::vector<domain::RemoteStateUpdate> SiteRemoteStateHistory() = 0;
};

struct ConcertoBackendFactory {
  std::string name;  // a gtest name: letters and digits only
  std::function<std::unique_ptr<ConcertoBackend>()> make;
};

inline void PrintTo(const ConcertoBackendFactory& backend, std::ostream* os) {
  *os << backend.name;
}

inline std::string ConcertoBackendName(const ::testing::TestParamInfo<ConcertoBackendFactory>& info) {
  return info.param.name;
}

// The suite's fixture: instantiate it with
//   INSTANTIATE_TEST_SUITE_P(Name, ConcertoApiConformance, ::testing::Values(factory), ConcertoBackendName);
class ConcertoApiConformance : public ::testing::TestWithParam<ConcertoBackendFactory> {
 protected:
  void SetUp() override;

  ports::ConcertoApi& api() { return backend_->Api(); }
  ConcertoBackend& backend() { return *backend_; }

  // The asset with this SYSTEM remoteId as the port reads it (failing the test when absent).
  std::optional<domain::ConcertoAsset> System(const std::string& remote_id);
  std::string Enroll(const std::string& remote_id, bool simulated = false,
                     std::optional<double> rated_power_kw = std::nullopt);

 private:
  std::unique_ptr<ConcertoBackend> backend_;
};

}  // namespace pwrcell::conformance
