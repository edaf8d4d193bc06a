// The API suites on the in-memory fakes the process tests use (FakeConcerto, FakeCes). The same
// suites run on the real clients against the simulators in tests/integration/api_conformance_test.cc.
#include <map>

#include "adapters/memory/fake_ces.h"
#include "adapters/memory/fake_concerto.h"
#include "api/ces_api_suite.h"
#include "api/concerto_api_suite.h"

namespace pwrcell::conformance {
namespace {

using adapters::FakeCes;
using adapters::FakeConcerto;

Status OutageStatus(Outage outage) {
  return outage == Outage::kRateLimited ? ResourceExhaustedError("HTTP 429 (injected)")
                                        : UnavailableError("HTTP 503 (injected)");
}

class FakeConcertoBackend final : public ConcertoBackend {
 public:
  ports::ConcertoApi& Api() override { return concerto_; }
  std::string EnrollSystem(const EnrollRequest& r) override {
    return concerto_.EnrollSystem(r.remote_id, r.name, r.adapter_name, r.simulated, r.rated_power_kw);
  }
  bool RemoveAsset(const std::string& asset_id) override { return concerto_.RemoveAsset(asset_id); }
  std::string UnusedId() override { return "asset-999999"; }
  void FailNext(std::string_view operation, Outage outage, int count) override {
    concerto_.FailNext(operation, OutageStatus(outage), count);
  }
  void LoseNextResponse(std::string_view operation) override {
    concerto_.LoseNextResponse(operation, DeadlineExceededError("answer lost (injected)"));
  }
  int CallCount(std::string_view operation) override { return concerto_.CallCount(operation); }
  std::vector<domain::TelemetryPoint> Points() override { return concerto_.Points(); }
  std::vector<domain::RemoteStateUpdate> AssetRemoteStateHistory() override {
    return concerto_.AssetRemoteStateHistory();
  }
  std::vector<domain::RemoteStateUpdate> SiteRemoteStateHistory() override {
    return concerto_.SiteRemoteStateHistory();
  }

 private:
  FakeConcerto concerto_;
};

class FakeCesBackend final : public CesBackend {
 public:
  ports::CesApi& Api() override { return ces_; }
  void AddSystem(const domain::SystemMetadata& metadata, std::optional<Timestamp> last_communication_at) override {
    ces_.AddSystem(metadata);
    heard_[metadata.system_id] = last_communication_at;
    ces_.SetStatus(metadata.system_id, metadata.status_name, last_communication_at);
  }
  void SetStatus(const std::string& system_id, const std::string& status_name) override {
    ces_.SetStatus(system_id, status_name, heard_[system_id]);
  }
  void FailNext(std::string_view operation, Outage outage, int count) override {
    ces_.FailNext(operation, OutageStatus(outage), count);
  }
  std::vector<CesRequest> Requests() override {
    std::vector<CesRequest> requests;
    for (const auto& call : ces_.Calls()) requests.push_back({call.operation, call.system_ids});
    return requests;
  }

 private:
  FakeCes ces_;
  std::map<std::string, std::optional<Timestamp>> heard_;
};

INSTANTIATE_TEST_SUITE_P(Fake, ConcertoApiConformance,
                         ::testing::Values(ConcertoBackendFactory{
                             "Fake", [] { return std::make_unique<FakeConcertoBackend>(); }}),
                         ConcertoBackendName);

INSTANTIATE_TEST_SUITE_P(Fake, CesApiConformance,
                         ::testing::Values(CesBackendFactory{"Fake",
                                                             [] { return std::make_unique<FakeCesBackend>(); }}),
                         CesBackendName);

}  // namespace
}  // namespace pwrcell::conformance
