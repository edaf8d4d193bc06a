// The port suites of tests/conformance/api (ConcertoApiConformance, CesApiConformance) on the real
// clients, each talking to its simulator started on a free port for the test. The same suites run
// on FakeConcerto and FakeCes in conformance_tests, so the fakes the process tests trust cannot
// drift from the simulators, which are judged by the contracts.
//
// Setup goes through the simulators' admin APIs. Clients run without retries and without a rate
// limit, so one port call is one request and an injected fault reaches the caller as it is.
#include <httplib.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/ces/ces_client.h"
#include "adapters/concerto/concerto_client.h"
#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_secret_store.h"
#include "api/ces_api_suite.h"
#include "api/concerto_api_suite.h"
#include "sim_process.h"

namespace pwrcell::conformance {
namespace {

using adapters::CesClient;
using adapters::CesClientOptions;
using adapters::ConcertoClient;
using adapters::ConcertoClientOptions;
using integration::SimBinary;
using integration::SimProcess;
using integration::SourcePath;
using nlohmann::json;

// The clients only compare tokens' lifetimes with it; the simulators judge by the wall clock.
Timestamp WallNow() {
  return FromUnixMillis(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// JSON over a simulator's admin API. A transport failure or an unexpected status fails the test.
class Admin {
 public:
  explicit Admin(const std::string& url) : http_(url) { http_.set_read_timeout(10, 0); }

  json Get(const std::string& path) { return Check("GET", path, http_.Get(path), {200}); }
  json Post(const std::string& path, const json& body, std::initializer_list<int> expected) {
    return Check("POST", path, http_.Post(path, body.dump(), "application/json"), expected);
  }
  // The HTTP status (0 on a transport failure).
  int Delete(const std::string& path) {
    auto result = http_.Delete(path);
    EXPECT_TRUE(result) << "DELETE " << path << ": " << httplib::to_string(result.error());
    return result ? result->status : 0;
  }

 private:
  json Check(const char* method, const std::string& path, const httplib::Result& result,
             std::initializer_list<int> expected) {
    if (!result) {
      ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(result.error());
      return nullptr;
    }
    if (std::find(expected.begin(), expected.end(), result->status) == expected.end()) {
      ADD_FAILURE() << method << " " << path << " answered " << result->status << ": " << result->body;
      return nullptr;
    }
    if (result->body.empty()) return nullptr;
    auto parsed = json::parse(result->body, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << method << " " << path << " answered: " << result->body;
    return parsed;
  }

  httplib::Client http_;
};

// ---- Concerto: ConcertoClient -> concerto-sim ----

constexpr char kConcertoEmail[] = "admin@example.com";  // concerto-sim's default login
constexpr char kConcertoPassword[] = "secret";
// A lost answer: concerto-sim holds the request this long before executing it, and the client
// that sends it gives up after kImpatientTimeout.
constexpr double kLostAnswerDelayS = 1.5;
constexpr auto kImpatientTimeout = std::chrono::milliseconds(500);

// Sends each call through the patient client, except a call whose answer the test wants lost:
// that one goes through a client with a short timeout, and returns only once concerto-sim has
// executed it (as FakeConcerto::LoseNextResponse applies the call before failing it).
class AnswerLosingApi final : public ports::ConcertoApi {
 public:
  AnswerLosingApi(ports::ConcertoApi& patient, ports::ConcertoApi& impatient, std::function<void()> await_idle)
      : patient_(patient), impatient_(impatient), await_idle_(std::move(await_idle)) {}

  void Arm(std::string_view operation) {
    std::lock_guard lock(mutex_);
    armed_.insert(std::string(operation));
  }

  Result<ports::AssetPage> ListAssets(int page, int per_page) override {
    return Route("ListAssets", [&](ports::ConcertoApi& api) { return api.ListAssets(page, per_page); });
  }
  Result<std::optional<domain::ConcertoAsset>> AssetByRemoteId(domain::AssetType type,
                                                               const std::string& remote_id) override {
    return Route("AssetByRemoteId", [&](ports::ConcertoApi& api) { return api.AssetByRemoteId(type, remote_id); });
  }
  Result<std::optional<domain::ConcertoSite>> SiteByRemoteId(const std::string& remote_id) override {
    return Route("SiteByRemoteId", [&](ports::ConcertoApi& api) { return api.SiteByRemoteId(remote_id); });
  }
  Result<domain::ConcertoSite> CreateSite(const domain::CreateSiteRequest& request) override {
    return Route("CreateSite", [&](ports::ConcertoApi& api) { return api.CreateSite(request); });
  }
  Result<domain::ConcertoAsset> CreateAsset(const domain::CreateAssetRequest& request) override {
    return Route("CreateAsset", [&](ports::ConcertoApi& api) { return api.CreateAsset(request); });
  }
  Result<domain::ConcertoAsset> UpdateAsset(const domain::UpdateAssetRequest& request) override {
    return Route("UpdateAsset", [&](ports::ConcertoApi& api) { return api.UpdateAsset(request); });
  }
  Status UpdateAssetRemoteState(const domain::RemoteStateUpdate& update) override {
    return Route("UpdateAssetRemoteState", [&](ports::ConcertoApi& api) { return api.UpdateAssetRemoteState(update); });
  }
  Status UpdateSiteRemoteState(const domain::RemoteStateUpdate& update) override {
    return Route("UpdateSiteRemoteState", [&](ports::ConcertoApi& api) { return api.UpdateSiteRemoteState(update); });
  }
  Result<domain::IngestResult> IngestTelemetry(const std::vector<domain::TelemetryPoint>& points) override {
    return Route("IngestTelemetry", [&](ports::ConcertoApi& api) { return api.IngestTelemetry(points); });
  }

 private:
  template <typename Call>
  std::invoke_result_t<Call&, ports::ConcertoApi&> Route(std::string_view operation, Call&& call) {
    bool lose = false;
    {
      std::lock_guard lock(mutex_);
      lose = armed_.erase(std::string(operation)) > 0;
    }
    if (!lose) return call(patient_);
    auto result = call(impatient_);
    await_idle_();
    return result;
  }

  ports::ConcertoApi& patient_;
  ports::ConcertoApi& impatient_;
  std::function<void()> await_idle_;
  std::mutex mutex_;
  std::set<std::string, std::less<>> armed_;
};

class SimConcertoBackend final : public ConcertoBackend {
 public:
  static std::unique_ptr<ConcertoBackend> Start() {
    auto sim = SimProcess::Start({SimBinary("concerto-sim"), "--port", "0", "--rate-limit", "0", "--email",
                                  kConcertoEmail, "--password", kConcertoPassword});
    if (!sim.ok()) {
      ADD_FAILURE() << sim.status().ToString();
      return nullptr;
    }
    return std::unique_ptr<ConcertoBackend>(new SimConcertoBackend(std::move(sim).value()));
  }

  ~SimConcertoBackend() override { EXPECT_EQ(sim_->Stop(), 0) << "concerto-sim should exit 0 on SIGTERM"; }

  ports::ConcertoApi& Api() override { return api_; }

  std::string EnrollSystem(const EnrollRequest& r) override {
    json body = {{"remoteId", r.remote_id}, {"name", r.name}, {"simulated", r.simulated}};
    body["adapterName"] = r.adapter_name ? json(*r.adapter_name) : json(nullptr);
    if (r.rated_power_kw) body["ratedPower"] = *r.rated_power_kw;
    const json asset = admin_.Post("/admin/systems", body, {201});
    return asset.is_object() ? asset.value("id", "") : "";
  }
  bool RemoveAsset(const std::string& asset_id) override { return admin_.Delete("/admin/assets/" + asset_id) == 200; }
  // concerto-sim's ids are decimal numbers shared by sites and assets; a test makes far fewer.
  std::string UnusedId() override { return "999999"; }

  void FailNext(std::string_view operation, Outage outage, int count) override {
    json fault = {{"operation", std::string(operation)}, {"count", count}};
    fault["kind"] = outage == Outage::kRateLimited ? "429" : "5xx";
    if (outage == Outage::kServerError) fault["status"] = 503;
    admin_.Post("/admin/faults", fault, {201});
  }
  void LoseNextResponse(std::string_view operation) override {
    admin_.Post("/admin/faults",
                {{"kind", "slow"}, {"delay_s", kLostAnswerDelayS}, {"operation", std::string(operation)}, {"count", 1}},
                {201});
    api_.Arm(operation);
  }
  int CallCount(std::string_view operation) override {
    const json stats = admin_.Get("/admin/stats");
    if (!stats.is_object()) return -1;
    return stats.at("requestsByOperation").value(std::string(operation), 0);
  }

  std::vector<domain::TelemetryPoint> Points() override {
    std::vector<domain::TelemetryPoint> points;
    const json answer = admin_.Get("/admin/telemetry");
    if (!answer.is_object()) return points;
    for (const json& p : answer.at("points")) {
      auto metric = domain::ParseMetric(p.at("metric").get<std::string>());
      auto timestamp = ParseIso8601(p.at("timestamp").get<std::string>());
      EXPECT_TRUE(metric && timestamp) << p.dump();
      if (!metric || !timestamp) continue;
      points.push_back({p.at("assetId").get<std::string>(), *metric, *timestamp, p.at("value").get<double>()});
    }
    return points;
  }
  std::vector<domain::RemoteStateUpdate> AssetRemoteStateHistory() override { return History("asset"); }
  std::vector<domain::RemoteStateUpdate> SiteRemoteStateHistory() override { return History("site"); }

 private:
  explicit SimConcertoBackend(std::unique_ptr<SimProcess> sim)
      : sim_(std::move(sim)),
        admin_(sim_->url()),
        clock_(WallNow()),
        patient_(Options(std::chrono::seconds(10)), secrets_, clock_),
        impatient_(Options(kImpatientTimeout), secrets_, clock_),
        api_(patient_, impatient_, [this] { AwaitIdle(); }) {
    EXPECT_TRUE(
        secrets_.Put("ConcertoCredentials", json{{"email", kConcertoEmail}, {"password", kConcertoPassword}}.dump())
            .ok());
  }

  ConcertoClientOptions Options(Duration timeout) const {
    ConcertoClientOptions options;
    options.root_url = sim_->url();
    options.timeout = timeout;
    options.max_retries = 0;
    options.max_requests_per_second = 0;
    return options;
  }

  // Until every request concerto-sim received has been answered (a held one included).
  void AwaitIdle() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      const json stats = admin_.Get("/admin/stats");
      if (!stats.is_object()) return;
      int answered = 0;
      for (const auto& [status, count] : stats.at("responsesByStatus").items()) answered += count.get<int>();
      if (answered >= stats.at("requests").get<int>()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "concerto-sim still holds a request after 10 s";
  }

  std::vector<domain::RemoteStateUpdate> History(const std::string& kind) {
    std::vector<domain::RemoteStateUpdate> history;
    const json answer = admin_.Get("/admin/remote-states?kind=" + kind);
    if (!answer.is_object()) return history;
    for (const json& entry : answer.at("history")) {
      auto state = domain::ParseRemoteState(entry.at("state").get<std::string>());
      EXPECT_TRUE(state.has_value()) << entry.dump();
      if (!state) continue;
      const json& reason = entry.at("reason");
      history.push_back({entry.at("id").get<std::string>(), *state, reason.is_null() ? "" : reason.get<std::string>()});
    }
    return history;
  }

  std::unique_ptr<SimProcess> sim_;
  Admin admin_;
  adapters::MemorySecretStore secrets_;
  adapters::FakeClock clock_;
  ConcertoClient patient_;
  ConcertoClient impatient_;
  AnswerLosingApi api_;
};

// ---- CES: CesClient -> ces-sim ----

constexpr char kCesKey[] = "ces-key-conformance-0123456789";

json MetadataJson(const domain::SystemMetadata& m) {
  json body = {{"systemId", m.system_id},    {"siteId", m.site_id},         {"siteName", m.site_name},
               {"timezone", m.timezone},     {"statusName", m.status_name}, {"inverters", json::array()},
               {"batteries", json::array()}, {"pvLinks", json::array()}};
  if (m.latitude) body["latitude"] = *m.latitude;
  if (m.longitude) body["longitude"] = *m.longitude;
  for (const auto& inverter : m.inverters) {
    json item = {{"rcpn", inverter.rcpn}, {"model", inverter.model}, {"ratedPowerW", inverter.rated_power_w}};
    if (inverter.ac_pv_power_rating_kw)
      item["inverterSetting"] = {{"acPVPowerRating", *inverter.ac_pv_power_rating_kw}};
    body["inverters"].push_back(std::move(item));
  }
  for (const auto& battery : m.batteries) {
    body["batteries"].push_back({{"rcpn", battery.rcpn},
                                 {"model", battery.model},
                                 {"capacityWh", battery.capacity_wh},
                                 {"ratedPowerW", battery.rated_power_w}});
  }
  for (const auto& link : m.pv_links)
    body["pvLinks"].push_back({{"rcpn", link.rcpn}, {"ratedPowerW", link.rated_power_w}});
  if (m.site_meter_id) body["siteMeter"] = {{"id", *m.site_meter_id}};
  return body;
}

class SimCesBackend final : public CesBackend {
 public:
  static std::unique_ptr<CesBackend> Start() {
    // One system of its own (a scenario cannot be empty), under an id prefix no test uses, and no
    // scenario faults; a test's systems come through the admin API.
    auto sim = SimProcess::Start({SimBinary("ces-sim"), "--port", "0", "--api-key", kCesKey, "--rate-limit", "0",
                                  "--scenario", SourcePath("tests/integration/ces_conformance.toml")});
    if (!sim.ok()) {
      ADD_FAILURE() << sim.status().ToString();
      return nullptr;
    }
    return std::unique_ptr<CesBackend>(new SimCesBackend(std::move(sim).value()));
  }

  ~SimCesBackend() override { EXPECT_EQ(sim_->Stop(), 0) << "ces-sim should exit 0 on SIGTERM"; }

  ports::CesApi& Api() override { return client_; }

  void AddSystem(const domain::SystemMetadata& metadata, std::optional<Timestamp> last_communication_at) override {
    json body = MetadataJson(metadata);
    if (last_communication_at) body["lastCommunicationAt"] = FormatIso8601(*last_communication_at);
    admin_.Post("/admin/systems", body, {200, 201});
  }
  void SetStatus(const std::string& system_id, const std::string& status_name) override {
    admin_.Post("/admin/systems/" + system_id + "/status", {{"statusName", status_name}}, {200});
  }
  void FailNext(std::string_view /*operation*/, Outage outage, int count) override {
    admin_.Post("/admin/faults", {{"kind", outage == Outage::kRateLimited ? "429" : "5xx"}, {"count", count}}, {200});
  }
  std::vector<CesRequest> Requests() override {
    std::vector<CesRequest> requests;
    const json answer = admin_.Get("/admin/requests");
    if (!answer.is_object()) return requests;
    for (const json& r : answer.at("requests")) {
      const std::string path = r.at("path").get<std::string>();
      const bool metadata = path.size() > 9 && path.ends_with("/metadata");
      requests.push_back({metadata ? "GetMetadata" : "GetStatus", r.at("systemIds").get<std::vector<std::string>>()});
    }
    return requests;
  }

 private:
  explicit SimCesBackend(std::unique_ptr<SimProcess> sim)
      : sim_(std::move(sim)), admin_(sim_->url()), clock_(WallNow()), client_(Options(), secrets_, clock_) {
    EXPECT_TRUE(secrets_.Put("CesCredentials", json{{"api_key", kCesKey}}.dump()).ok());
  }

  CesClientOptions Options() const {
    CesClientOptions options;
    options.root_url = sim_->url();
    options.timeout = std::chrono::seconds(10);
    options.max_retries = 0;
    options.max_requests_per_second = 0;
    return options;
  }

  std::unique_ptr<SimProcess> sim_;
  Admin admin_;
  adapters::MemorySecretStore secrets_;
  adapters::FakeClock clock_;
  CesClient client_;
};

INSTANTIATE_TEST_SUITE_P(SimClient, ConcertoApiConformance,
                         ::testing::Values(ConcertoBackendFactory{"SimClient",
                                                                  [] { return SimConcertoBackend::Start(); }}),
                         ConcertoBackendName);

INSTANTIATE_TEST_SUITE_P(
    SimClient, CesApiConformance,
    ::testing::Values(CesBackendFactory{"SimClient", [] { return SimCesBackend::Start(); }, {}}),
    CesBackendName);

}  // namespace
}  // namespace pwrcell::conformance
