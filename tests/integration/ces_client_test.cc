// CesClient against the real ces-sim serving the demo-50 fleet (a child process on a free port).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/ces/ces_client.h"
#include "adapters/memory/memory_secret_store.h"
#include "adapters/system/system_clock.h"
#include "sim_process.h"

namespace pwrcell::adapters {
namespace {

using integration::AdminClient;
using integration::SimBinary;
using integration::SimProcess;
using integration::SourcePath;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kApiKey[] = "ces-key-Test-0123456789";
constexpr char kWrongKey[] = "ces-key-Wrong-9876543210";
constexpr char kSecretId[] = "CesCredentials";
const char* kRequests = "pwrcell_ces_requests_total";

// The fleet ces-sim serves, as fleet-sim prints it.
const json& Fleet() {
  static const json fleet = [] {
    const std::string command =
        SimBinary("fleet-sim") + " --scenario " + SourcePath("sim/scenarios/demo-50.toml") + " --print-fleet";
    std::string output;
    if (FILE* pipe = popen(command.c_str(), "r"); pipe != nullptr) {
      char buffer[4096];
      std::size_t n = 0;
      while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
      pclose(pipe);
    }
    return json::parse(output, nullptr, false);
  }();
  return fleet;
}

class CesClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Fleet().is_object()) << "fleet-sim --print-fleet did not print JSON";
    ASSERT_EQ(Fleet().at("systems").size(), 50U);
    auto started = SimProcess::Start({SimBinary("ces-sim"), "--port", "0", "--api-key", kApiKey, "--scenario",
                                      SourcePath("sim/scenarios/demo-50.toml")});
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    sim_ = std::move(started).value();
    admin_ = std::make_unique<AdminClient>(sim_->url());
    PutKey(kApiKey);
  }
  void TearDown() override {
    if (sim_) {
      EXPECT_EQ(sim_->Stop(), 0) << "ces-sim should exit 0 on SIGTERM";
    }
  }

  void PutKey(const std::string& key) { ASSERT_TRUE(secrets_.Put(kSecretId, json{{"api_key", key}}.dump()).ok()); }

  CesClientOptions Options() const {
    CesClientOptions options;
    options.root_url = sim_->url();
    options.timeout = std::chrono::seconds(10);
    options.max_retries = 3;
    options.max_requests_per_second = 10;
    options.backoff.initial = std::chrono::milliseconds(20);
    options.backoff.max_delay = std::chrono::milliseconds(200);
    return options;
  }
  std::unique_ptr<CesClient> Client(const CesClientOptions& options) {
    return std::make_unique<CesClient>(options, secrets_, clock_, &metrics_);
  }

  // ces-sim's request log: one {method, path, systemIds, status} per API request.
  json Requests() const { return admin_->Get("/admin/requests").at("requests"); }
  std::vector<int> LoggedStatuses() const {
    std::vector<int> statuses;
    for (const json& request : Requests()) statuses.push_back(request.at("status").get<int>());
    return statuses;
  }
  void Fault(const json& fault) {
    long status = 0;
    admin_->Post("/admin/faults", fault, &status);
    ASSERT_EQ(status, 200) << fault.dump();
  }
  double Count(const std::string& operation, const std::string& outcome) const {
    return metrics_.Value(kRequests, {{"operation", operation}, {"outcome", outcome}});
  }
  // Systems the scenario's faults leave alone (3, 7, 11 and 15 change over time, 0- or 1-based).
  static bool Untouched(std::size_t index) {
    for (std::size_t faulty : {3U, 7U, 11U, 15U}) {
      if (index == faulty || index + 1 == faulty) return false;
    }
    return true;
  }
  const json& SystemWhere(bool with_meter) const {
    const json& systems = Fleet().at("systems");
    for (std::size_t i = 0; i < systems.size(); ++i) {
      if (Untouched(i) && systems[i].contains("siteMeter") == with_meter) return systems[i];
    }
    ADD_FAILURE() << "no untouched system with_meter=" << with_meter;
    return systems[0];
  }

  std::unique_ptr<SimProcess> sim_;
  std::unique_ptr<AdminClient> admin_;
  MemorySecretStore secrets_;
  SystemClock clock_;
  Metrics metrics_;
};

void ExpectMetadataMatches(const domain::SystemMetadata& metadata, const json& expected) {
  EXPECT_EQ(metadata.system_id, expected.at("systemId"));
  EXPECT_EQ(metadata.site_id, expected.at("siteId"));
  EXPECT_EQ(metadata.site_name, expected.at("siteName"));
  EXPECT_EQ(metadata.timezone, expected.at("timezone"));
  EXPECT_EQ(metadata.latitude, expected.at("latitude").get<double>());
  EXPECT_EQ(metadata.longitude, expected.at("longitude").get<double>());
  EXPECT_EQ(metadata.status_name, "SUCCESS");
  ASSERT_EQ(metadata.inverters.size(), expected.at("inverters").size());
  for (std::size_t i = 0; i < metadata.inverters.size(); ++i) {
    const json& inverter = expected.at("inverters")[i];
    EXPECT_EQ(metadata.inverters[i].rcpn, inverter.at("rcpn"));
    EXPECT_EQ(metadata.inverters[i].model, inverter.at("model"));
    EXPECT_EQ(metadata.inverters[i].rated_power_w, inverter.at("ratedPowerW").get<double>());
    EXPECT_EQ(metadata.inverters[i].ac_pv_power_rating_kw,
              inverter.at("inverterSetting").at("acPVPowerRating").get<double>());
  }
  ASSERT_EQ(metadata.batteries.size(), expected.at("batteries").size());
  for (std::size_t i = 0; i < metadata.batteries.size(); ++i) {
    const json& battery = expected.at("batteries")[i];
    EXPECT_EQ(metadata.batteries[i],
              (domain::CesBattery{battery.at("rcpn"), battery.at("model"), battery.at("capacityWh").get<double>(),
                                  battery.at("ratedPowerW").get<double>()}));
  }
  ASSERT_EQ(metadata.pv_links.size(), expected.at("pvLinks").size());
  for (std::size_t i = 0; i < metadata.pv_links.size(); ++i) {
    const json& link = expected.at("pvLinks")[i];
    EXPECT_EQ(metadata.pv_links[i], (domain::CesPvLink{link.at("rcpn"), link.at("ratedPowerW").get<double>()}));
  }
  if (expected.contains("siteMeter")) {
    EXPECT_EQ(metadata.site_meter_id, expected.at("siteMeter").at("id").get<std::string>());
  } else {
    EXPECT_EQ(metadata.site_meter_id, std::nullopt);
  }
}

TEST_F(CesClientTest, MetadataOfDemoSystemsMatchesTheFleet) {
  auto client = Client(Options());
  const json& metered = SystemWhere(true);
  const json& meterless = SystemWhere(false);
  for (const json* system : {&metered, &meterless}) {
    const std::string id = system->at("systemId");
    auto metadata = client->GetMetadata(id);
    ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
    SCOPED_TRACE(id);
    ExpectMetadataMatches(*metadata, *system);
  }
  const json requests = Requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_EQ(requests[0].at("path"), "/systems/v1/" + metered.at("systemId").get<std::string>() + "/metadata");
  EXPECT_EQ(requests[0].at("status"), 200);
  EXPECT_EQ(Count("metadata", "ok"), 2);
}

TEST_F(CesClientTest, UnknownSystemIsNotFound) {
  auto client = Client(Options());
  auto metadata = client->GetMetadata("00000000-no-such-system");
  ASSERT_FALSE(metadata.ok());
  EXPECT_EQ(metadata.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(metadata.status().message(), HasSubstr("404"));
  EXPECT_EQ(LoggedStatuses(), std::vector<int>{404});  // not retried
  EXPECT_EQ(Count("metadata", "http_4xx"), 1);
}

TEST_F(CesClientTest, StatusBatchListsStatusesAndUnknownIds) {
  auto client = Client(Options());
  const json& systems = Fleet().at("systems");
  const std::string first = systems[0].at("systemId");
  const std::string second = systems[1].at("systemId");
  const std::string odd = "no such+system/1";  // must survive URL encoding
  auto batch = client->GetStatus({first, odd, second});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->statuses.size(), 2U);
  EXPECT_EQ(batch->statuses[0].system_id, first);
  EXPECT_EQ(batch->statuses[1].system_id, second);
  const Timestamp start = *ParseIso8601(Fleet().at("start").get<std::string>());
  for (const auto& status : batch->statuses) {
    EXPECT_EQ(status.status_name, "SUCCESS");
    ASSERT_TRUE(status.last_communication_at.has_value());
    EXPECT_GE(*status.last_communication_at, start);
    EXPECT_LT(*status.last_communication_at, start + std::chrono::hours(2));
  }
  EXPECT_EQ(batch->not_found, std::vector<std::string>{odd});
  const json requests = Requests();
  ASSERT_EQ(requests.size(), 1U);
  EXPECT_EQ(requests[0].at("systemIds"), (json{first, odd, second}));
  EXPECT_EQ(Count("status", "ok"), 1);

  auto empty = client->GetStatus({});
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->statuses.empty());
  EXPECT_EQ(Requests().size(), 1U);  // nothing to ask
}

TEST_F(CesClientTest, MoreThan100IdsAreRefusedWithoutARequest) {
  auto client = Client(Options());
  std::vector<std::string> ids;
  for (int i = 0; i < 101; ++i) ids.push_back("system-" + std::to_string(i));
  auto batch = client->GetStatus(ids);
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(batch.status().message(), HasSubstr("101"));
  ids.pop_back();
  auto hundred = client->GetStatus(ids);
  ASSERT_TRUE(hundred.ok()) << hundred.status().ToString();
  EXPECT_EQ(hundred->not_found.size(), 100U);
  EXPECT_EQ(Requests().size(), 1U);  // only the batch of 100 was sent
}

TEST_F(CesClientTest, WrongKeyIsUnauthenticatedAndNeverShown) {
  PutKey(kWrongKey);
  auto client = Client(Options());
  auto metadata = client->GetMetadata(Fleet().at("systems")[0].at("systemId"));
  ASSERT_FALSE(metadata.ok());
  EXPECT_EQ(metadata.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(metadata.status().message(), HasSubstr(kSecretId));
  EXPECT_THAT(metadata.status().ToString(), Not(HasSubstr(kWrongKey)));
  EXPECT_THAT(metrics_.RenderPrometheus(), Not(HasSubstr(kWrongKey)));
  EXPECT_EQ(LoggedStatuses(), std::vector<int>{401});  // the secret still held the same key: no retry
  EXPECT_EQ(Count("metadata", "unauthorized"), 1);
}

TEST_F(CesClientTest, RotatedKeyIsPickedUpAfterA401) {
  PutKey(kWrongKey);
  auto client = Client(Options());
  const std::string id = Fleet().at("systems")[0].at("systemId");
  EXPECT_EQ(client->GetStatus({id}).status().code(), StatusCode::kUnauthenticated);
  PutKey(kApiKey);  // an operator rotates the secret
  auto batch = client->GetStatus({id});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ(batch->statuses.size(), 1U);
  EXPECT_EQ(LoggedStatuses(), (std::vector<int>{401, 401, 200}));
}

TEST_F(CesClientTest, ServerErrorsAreRetried) {
  auto client = Client(Options());
  Fault({{"kind", "5xx"}, {"count", 2}});
  const json& system = SystemWhere(true);
  auto metadata = client->GetMetadata(system.at("systemId"));
  ASSERT_TRUE(metadata.ok()) << metadata.status().ToString();
  ExpectMetadataMatches(*metadata, system);
  EXPECT_EQ(LoggedStatuses(), (std::vector<int>{503, 503, 200}));
  EXPECT_EQ(Count("metadata", "http_5xx"), 2);
  EXPECT_EQ(metrics_.Value("pwrcell_ces_retries_total", {{"operation", "metadata"}}), 2);
}

TEST_F(CesClientTest, PersistentServerErrorsAreReturnedAfterMaxRetries) {
  CesClientOptions options = Options();
  options.max_retries = 1;
  auto client = Client(options);
  Fault({{"kind", "5xx"}});
  auto batch = client->GetStatus({"a", "b"});
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(batch.status().message(), HasSubstr("503"));
  EXPECT_EQ(LoggedStatuses(), (std::vector<int>{503, 503}));
  Fault({{"kind", "clear"}});
}

TEST_F(CesClientTest, RateLimitedAnswersHonourRetryAfter) {
  auto client = Client(Options());
  Fault({{"kind", "429"}, {"count", 1}});
  const auto start = std::chrono::steady_clock::now();
  auto batch = client->GetStatus({Fleet().at("systems")[0].at("systemId")});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_GE(elapsed, std::chrono::milliseconds(980));  // Retry-After: 1
  EXPECT_EQ(LoggedStatuses(), (std::vector<int>{429, 200}));
  EXPECT_EQ(Count("status", "rate_limited"), 1);
}

TEST_F(CesClientTest, ClientRateLimitKeepsUnderTheServersLimit) {
  CesClientOptions options = Options();
  options.max_requests_per_second = 8;  // ces-sim refuses past 10 per second
  auto client = Client(options);
  const std::string id = Fleet().at("systems")[0].at("systemId");
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(client->GetStatus({id}).ok()) << i;
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1300));  // 11 intervals of 125 ms
  EXPECT_EQ(LoggedStatuses(), std::vector<int>(12, 200));
}

TEST_F(CesClientTest, MissingOrMalformedSecretIsAFailedPrecondition) {
  MemorySecretStore empty;
  CesClient without(Options(), empty, clock_, nullptr);
  EXPECT_EQ(without.GetMetadata("x").status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(empty.Put(kSecretId, R"({"key": "misnamed"})").ok());
  auto malformed = without.GetMetadata("x");
  EXPECT_EQ(malformed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(malformed.status().message(), HasSubstr("api_key"));
  EXPECT_TRUE(Requests().empty());
}

TEST(CesClientOptions, FromConfigCopiesTheDeploymentSettings) {
  config::CesConfig config;
  config.root_url = "https://ces.example.com";
  config.credentials_secret = "Other";
  config.timeout_s = std::chrono::seconds(7);
  config.max_retries = 1;
  config.max_requests_per_second = 3;
  const CesClientOptions options = CesClientOptions::FromConfig(config);
  EXPECT_EQ(options.root_url, "https://ces.example.com");
  EXPECT_EQ(options.credentials_secret, "Other");
  EXPECT_EQ(options.timeout, std::chrono::seconds(7));
  EXPECT_EQ(options.max_retries, 1);
  EXPECT_EQ(options.max_requests_per_second, 3);
}

}  // namespace
}  // namespace pwrcell::adapters
