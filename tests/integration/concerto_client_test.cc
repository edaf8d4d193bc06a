// ConcertoClient against the real concerto-sim (a child process on a free port).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/concerto/concerto_client.h"
#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_secret_store.h"
#include "adapters/system/system_clock.h"
#include "sim_process.h"

namespace pwrcell::adapters {
namespace {

using integration::AdminClient;
using integration::SimBinary;
using integration::SimProcess;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kEmail[] = "ops@example.com";
constexpr char kPassword[] = "Pa55-xyzzy-do-not-print";
constexpr char kWrongPassword[] = "wr0ng-plugh-do-not-print";
constexpr char kSecretId[] = "ConcertoCredentials";
constexpr char kAdapter[] = "pwrcell-adapter";

const char* kRequests = "pwrcell_concerto_requests_total";
const char* kRetries = "pwrcell_concerto_retries_total";

class ConcertoClientTest : public ::testing::Test {
 protected:
  void SetUp() override { StartSim({}); }
  void TearDown() override {
    if (sim_) {
      EXPECT_EQ(sim_->Stop(), 0) << "concerto-sim should exit 0 on SIGTERM";
    }
  }

  void StartSim(const std::vector<std::string>& extra) {
    if (sim_) sim_->Stop();
    std::vector<std::string> argv = {SimBinary("concerto-sim"), "--port", "0", "--email", kEmail, "--password",
                                     kPassword};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto started = SimProcess::Start(argv);
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    sim_ = std::move(started).value();
    admin_ = std::make_unique<AdminClient>(sim_->url());
    PutSecret({{"email", kEmail}, {"password", kPassword}, {"note", "kept"}});
  }

  ConcertoClientOptions Options() const {
    ConcertoClientOptions options;
    options.root_url = sim_->url() + "/";  // a trailing slash is tolerated
    options.credentials_secret = kSecretId;
    options.timeout = std::chrono::seconds(10);
    options.max_retries = 3;
    options.max_requests_per_second = 0;
    options.backoff.initial = std::chrono::milliseconds(20);
    options.backoff.max_delay = std::chrono::milliseconds(200);
    return options;
  }

  std::unique_ptr<ConcertoClient> Client(const ConcertoClientOptions& options, const ports::Clock* clock = nullptr) {
    return std::make_unique<ConcertoClient>(options, secrets_, clock ? *clock : clock_, &metrics_);
  }

  void PutSecret(const json& value) { ASSERT_TRUE(secrets_.Put(kSecretId, value.dump()).ok()); }
  json Stats() const { return admin_->Get("/admin/stats"); }
  int StatInt(const json& stats, const std::string& group, const std::string& key) const {
    return stats.at(group).value(key, 0);
  }
  json Secret() {
    auto value = secrets_.Get(kSecretId);
    EXPECT_TRUE(value.ok());
    return json::parse(*value);
  }
  void Fault(const json& fault) {
    long status = 0;
    admin_->Post("/admin/faults", fault, &status);
    ASSERT_TRUE(status == 200 || status == 201) << fault.dump();
  }
  std::string Enroll(const std::string& remote_id, const std::string& adapter = kAdapter) {
    long status = 0;
    json asset =
        admin_->Post("/admin/systems", {{"remoteId", remote_id}, {"adapterName", adapter}, {"ratedPower", 7.6}}, &status);
    EXPECT_EQ(status, 201) << asset.dump();
    return asset.value("id", "");
  }
  double Count(const std::string& operation, const std::string& outcome) const {
    return metrics_.Value(kRequests, {{"operation", operation}, {"outcome", outcome}});
  }
  // No secret in a message, a log-worthy string or the metrics.
  void ExpectNoSecrets(const std::string& text) {
    EXPECT_THAT(text, Not(HasSubstr(kPassword)));
    EXPECT_THAT(text, Not(HasSubstr(kWrongPassword)));
    auto secret = secrets_.Get(kSecretId);
    if (secret.ok()) {
      const std::string token = json::parse(*secret).value("token", "");
      if (!token.empty()) {
        EXPECT_THAT(text, Not(HasSubstr(token)));
      }
    }
  }

  std::unique_ptr<SimProcess> sim_;
  std::unique_ptr<AdminClient> admin_;
  MemorySecretStore secrets_;
  SystemClock clock_;
  Metrics metrics_;
};

TEST_F(ConcertoClientTest, AuthenticatesOnceAndWritesTheTokenBackIntoTheSecret) {
  auto client = Client(Options());
  auto page = client->ListAssets(1, 100);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->total_count, 0);
  EXPECT_TRUE(page->assets.empty());

  const json secret = Secret();
  EXPECT_EQ(secret.value("email", ""), kEmail);
  EXPECT_EQ(secret.value("password", ""), kPassword);
  EXPECT_EQ(secret.value("note", ""), "kept");
  const std::string token = secret.value("token", "");
  EXPECT_GE(token.size(), 20U);
  auto expires_at = ParseIso8601(secret.value("token_expires_at", ""));
  ASSERT_TRUE(expires_at.has_value()) << secret.dump();
  const auto ttl = std::chrono::duration_cast<std::chrono::seconds>(*expires_at - clock_.Now());
  EXPECT_GE(ttl.count(), 1790);  // --token-ttl defaults to 1800 s
  EXPECT_LE(ttl.count(), 1801);

  ASSERT_TRUE(client->ListAssets(1, 100).ok());
  // A second client (another worker) sharing the secret reuses the token: still one authentication.
  auto other = Client(Options());
  ASSERT_TRUE(other->ListAssets(1, 10).ok());
  const json stats = Stats();
  EXPECT_EQ(stats.at("tokensIssued"), 1);
  EXPECT_EQ(StatInt(stats, "requestsByOperation", "Authenticate"), 1);
  EXPECT_EQ(StatInt(stats, "requestsByOperation", "ListAssets"), 3);
  EXPECT_EQ(Secret().value("token", ""), token);
  EXPECT_EQ(Count("Authenticate", "ok"), 1);
  EXPECT_EQ(Count("ListAssets", "ok"), 3);
  ExpectNoSecrets(metrics_.RenderPrometheus());
}

TEST_F(ConcertoClientTest, RevokedTokenTriggersExactlyOneReauthentication) {
  auto client = Client(Options());
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  const std::string first_token = Secret().value("token", "");
  Fault({{"kind", "revoke_tokens"}});

  auto page = client->ListAssets(1, 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  const json stats = Stats();
  EXPECT_EQ(stats.at("tokensIssued"), 2);
  EXPECT_EQ(StatInt(stats, "responsesByStatus", "401"), 1);
  EXPECT_EQ(StatInt(stats, "requestsByOperation", "ListAssets"), 3);
  EXPECT_EQ(Count("ListAssets", "unauthorized"), 1);
  EXPECT_EQ(metrics_.Value(kRetries, {{"operation", "ListAssets"}}), 0);  // a re-auth is not a retry
  const std::string second_token = Secret().value("token", "");
  EXPECT_FALSE(second_token.empty());
  EXPECT_NE(second_token, first_token);
}

TEST_F(ConcertoClientTest, StaleTokenInTheSecretIsReplacedAfterOne401) {
  PutSecret({{"email", kEmail},
             {"password", kPassword},
             {"token", "token-from-an-old-run"},
             {"token_expires_at", FormatIso8601(clock_.Now() + std::chrono::hours(1))}});
  auto client = Client(Options());
  ASSERT_TRUE(client->SiteByRemoteId("nowhere").ok());
  const json stats = Stats();
  EXPECT_EQ(stats.at("tokensIssued"), 1);
  EXPECT_EQ(StatInt(stats, "responsesByStatus", "401"), 1);
  EXPECT_NE(Secret().value("token", ""), "token-from-an-old-run");
}

TEST_F(ConcertoClientTest, WrongPasswordIsUnauthenticatedAndNeverShown) {
  PutSecret({{"email", kEmail}, {"password", kWrongPassword}});
  auto client = Client(Options());
  auto page = client->ListAssets(1, 10);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(page.status().message(), HasSubstr(kSecretId));
  ExpectNoSecrets(page.status().ToString());
  ExpectNoSecrets(metrics_.RenderPrometheus());
  const json stats = Stats();
  EXPECT_EQ(stats.at("tokensIssued"), 0);
  EXPECT_EQ(StatInt(stats, "requestsByOperation", "Authenticate"), 1);  // not retried
  EXPECT_EQ(StatInt(stats, "requestsByOperation", "ListAssets"), 0);
  EXPECT_FALSE(Secret().contains("token"));
  EXPECT_EQ(metrics_.Value("pwrcell_concerto_authentications_total", {{"outcome", "rejected"}}), 1);
}

TEST_F(ConcertoClientTest, SecondUnauthorizedAfterReauthenticationIsUnauthenticated) {
  // Tokens live 1 s and every ListAssets is held 1.5 s: each token has expired when it is checked.
  StartSim({"--token-ttl", "1"});
  Fault({{"kind", "slow"}, {"delay_s", 1.5}, {"operation", "ListAssets"}, {"count", 2}});
  ConcertoClientOptions options = Options();
  options.token_expiry_margin = Duration(0);
  auto client = Client(options);
  auto page = client->ListAssets(1, 10);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kUnauthenticated) << page.status().ToString();
  ExpectNoSecrets(page.status().ToString());
  const json stats = Stats();
  EXPECT_EQ(stats.at("tokensIssued"), 2);  // the first and exactly one re-authentication
  EXPECT_EQ(StatInt(stats, "responsesByStatus", "401"), 2);
  EXPECT_EQ(Count("ListAssets", "unauthorized"), 2);
}

TEST_F(ConcertoClientTest, RenewsTheTokenBeforeItExpires) {
  FakeClock clock(SystemClock().Now());
  auto client = Client(Options(), &clock);
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  const std::string first = Secret().value("token", "");
  clock.Advance(std::chrono::seconds(1700));  // 100 s left: still fresh
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  EXPECT_EQ(Stats().at("tokensIssued"), 1);
  clock.Advance(std::chrono::seconds(50));  // 50 s left: inside the 60 s margin
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  EXPECT_EQ(Stats().at("tokensIssued"), 2);
  EXPECT_NE(Secret().value("token", ""), first);
  EXPECT_EQ(StatInt(Stats(), "responsesByStatus", "401"), 0);  // renewed before any rejection
}

TEST_F(ConcertoClientTest, RenewsTheTokenOnceItIsOlderThanTheRenewalPeriod) {
  FakeClock clock(SystemClock().Now());
  ConcertoClientOptions options = Options();
  options.token_renewal = std::chrono::seconds(600);
  auto client = Client(options, &clock);
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  clock.Advance(std::chrono::seconds(599));
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  EXPECT_EQ(Stats().at("tokensIssued"), 1);
  clock.Advance(std::chrono::seconds(2));
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  EXPECT_EQ(Stats().at("tokensIssued"), 2);
  // The age travels with the token through the secret: a new worker renews it at the same time.
  ASSERT_TRUE(Secret().contains("token_issued_at"));
}

TEST_F(ConcertoClientTest, ConcurrentWorkersShareOneAuthentication) {
  auto client = Client(Options());
  std::atomic<int> ok{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 3; ++i) ok += client->ListAssets(1, 5).ok() ? 1 : 0;
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(ok.load(), 24);
  const json stats = Stats();
  EXPECT_EQ(stats.at("tokensIssued"), 1);
  EXPECT_EQ(StatInt(stats, "requestsByOperation", "ListAssets"), 24);
}

TEST_F(ConcertoClientTest, ServerErrorsAreRetriedWithBackoff) {
  auto client = Client(Options());
  ASSERT_TRUE(client->ListAssets(1, 10).ok());  // authenticated before the outage
  Fault({{"kind", "5xx"}, {"status", 502}, {"count", 2}});
  auto page = client->ListAssets(1, 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(Count("ListAssets", "http_5xx"), 2);
  EXPECT_EQ(Count("ListAssets", "ok"), 2);
  EXPECT_EQ(metrics_.Value(kRetries, {{"operation", "ListAssets"}}), 2);
  const json stats = Stats();
  EXPECT_EQ(StatInt(stats, "faultsInjected", "5xx"), 2);
  EXPECT_EQ(StatInt(stats, "responsesByStatus", "502"), 2);
}

TEST_F(ConcertoClientTest, PersistentServerErrorsAreReturnedAfterMaxRetries) {
  ConcertoClientOptions options = Options();
  options.max_retries = 2;
  auto client = Client(options);
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  Fault({{"kind", "5xx"}, {"status", 503}});
  auto site = client->SiteByRemoteId("anything");
  ASSERT_FALSE(site.ok());
  EXPECT_EQ(site.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(site.status().message(), HasSubstr("HTTP 503"));
  EXPECT_EQ(Count("SiteByRemoteId", "http_5xx"), 3);  // the attempt and 2 retries
  EXPECT_EQ(metrics_.Value(kRetries, {{"operation", "SiteByRemoteId"}}), 2);
  Fault({{"kind", "clear"}});
}

TEST_F(ConcertoClientTest, RateLimitedAnswersHonourRetryAfter) {
  auto client = Client(Options());
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  Fault({{"kind", "429"}, {"operation", "SiteByRemoteId"}, {"count", 1}});
  const auto start = std::chrono::steady_clock::now();
  auto site = client->SiteByRemoteId("nowhere");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  EXPECT_FALSE(site->has_value());
  EXPECT_GE(elapsed, std::chrono::milliseconds(980));  // Retry-After: 1, not the 20 ms backoff
  EXPECT_EQ(Count("SiteByRemoteId", "rate_limited"), 1);
  EXPECT_EQ(Count("SiteByRemoteId", "ok"), 1);
  EXPECT_EQ(StatInt(Stats(), "responsesByStatus", "429"), 1);
}

TEST_F(ConcertoClientTest, ServerRateLimitIsSurvivedAndClientLimiterAvoidsIt) {
  StartSim({"--rate-limit", "5"});
  {
    auto unlimited = Client(Options());  // no client-side limit: the server refuses some
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(unlimited->ListAssets(1, 5).ok()) << i;
    EXPECT_GE(Count("ListAssets", "rate_limited"), 1);
    EXPECT_EQ(Count("ListAssets", "ok"), 8);
  }
  admin_->Post("/admin/reset", json::object());
  ConcertoClientOptions options = Options();
  options.max_requests_per_second = 4;
  auto limited = Client(options);
  const double refused_before = Count("ListAssets", "rate_limited");
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(limited->ListAssets(1, 5).ok()) << i;
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200));  // 6 requests at 4/s
  EXPECT_EQ(Count("ListAssets", "rate_limited"), refused_before);
  EXPECT_EQ(StatInt(Stats(), "responsesByStatus", "429"), 0);
}

TEST_F(ConcertoClientTest, TimeoutsAreDeadlineExceededAndRetried) {
  ConcertoClientOptions options = Options();
  options.timeout = std::chrono::milliseconds(600);
  options.max_retries = 0;
  auto client = Client(options);
  ASSERT_TRUE(client->ListAssets(1, 10).ok());
  Fault({{"kind", "slow"}, {"delay_s", 2}, {"operation", "SiteByRemoteId"}, {"count", 1}});
  auto timed_out = client->SiteByRemoteId("x");
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.status().code(), StatusCode::kDeadlineExceeded) << timed_out.status().ToString();
  EXPECT_EQ(Count("SiteByRemoteId", "timeout"), 1);

  options.max_retries = 1;
  auto retrying = Client(options);
  Fault({{"kind", "slow"}, {"delay_s", 2}, {"operation", "SiteByRemoteId"}, {"count", 1}});
  auto site = retrying->SiteByRemoteId("x");
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  EXPECT_EQ(Count("SiteByRemoteId", "timeout"), 2);
  EXPECT_EQ(Count("SiteByRemoteId", "ok"), 1);
}

TEST_F(ConcertoClientTest, CreatesSitesAndAssetsAndListsThemPageByPageWithChildren) {
  auto client = Client(Options());
  const std::string system1 = Enroll("sys-1");
  const std::string system2 = Enroll("sys-2");
  const std::string system3 = Enroll("sys-3");
  const std::string foreign = Enroll("sys-x", "another-adapter");

  auto site = client->CreateSite({"ces-site-1", "Smith residence", "America/Denver", 39.74, -104.99});
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  EXPECT_EQ(site->remote_id, "ces-site-1");
  EXPECT_EQ(site->name, "Smith residence");
  EXPECT_EQ(site->timezone, "America/Denver");
  EXPECT_EQ(site->latitude, 39.74);
  EXPECT_EQ(site->longitude, -104.99);
  EXPECT_EQ(site->remote_state, std::nullopt);

  domain::CreateAssetRequest inverter_request;
  inverter_request.remote_id = "RCP-INV-1";
  inverter_request.name = "Inverter";
  inverter_request.asset_type = domain::AssetType::kInverter;
  inverter_request.adapter_name = kAdapter;
  inverter_request.site_id = site->id;
  inverter_request.parent_id = system1;
  inverter_request.rated_power_kw = 7.6;
  inverter_request.ac_coupled = true;
  auto inverter = client->CreateAsset(inverter_request);
  ASSERT_TRUE(inverter.ok()) << inverter.status().ToString();
  EXPECT_EQ(inverter->asset_type, domain::AssetType::kInverter);
  EXPECT_EQ(inverter->parent_id, system1);
  ASSERT_TRUE(inverter->site.has_value());
  EXPECT_EQ(inverter->site->id, site->id);
  EXPECT_EQ(inverter->site->remote_id, "ces-site-1");
  EXPECT_EQ(inverter->rated_power_kw, 7.6);
  EXPECT_EQ(inverter->ac_coupled, true);
  EXPECT_EQ(inverter->energy_capacity_kwh, std::nullopt);  // omitted, not sent as 0
  EXPECT_EQ(inverter->adapter_name, kAdapter);
  EXPECT_FALSE(inverter->simulated);

  auto make_child = [&](const std::string& remote_id, domain::AssetType type, const std::string& parent) {
    domain::CreateAssetRequest request;
    request.remote_id = remote_id;
    request.name = remote_id;
    request.asset_type = type;
    request.adapter_name = kAdapter;
    request.site_id = site->id;
    request.parent_id = parent;
    request.simulated = true;
    if (type == domain::AssetType::kBattery) request.energy_capacity_kwh = 18;
    auto created = client->CreateAsset(request);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    return created.ok() ? created->id : std::string();
  };
  const std::string battery = make_child("RCP-BAT-1", domain::AssetType::kBattery, inverter->id);
  const std::string pv = make_child("RCP-PV-1", domain::AssetType::kPhotovoltaic, inverter->id);
  const std::string meter = make_child("sys-1-meter", domain::AssetType::kSiteMeter, system1);

  domain::UpdateAssetRequest update;
  update.id = system1;
  update.site_id = site->id;
  update.ac_coupled = true;
  auto updated = client->UpdateAsset(update);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->rated_power_kw, 7.6);  // omitted in the update: unchanged
  EXPECT_EQ(updated->ac_coupled, true);
  ASSERT_TRUE(updated->site.has_value());
  EXPECT_EQ(updated->site->name, "Smith residence");

  // 8 assets; pages of 3.
  std::vector<domain::ConcertoAsset> all;
  for (int page = 1;; ++page) {
    auto listed = client->ListAssets(page, 3);
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    EXPECT_EQ(listed->total_count, 8);
    if (listed->assets.empty()) {
      EXPECT_EQ(page, 4);
      break;
    }
    EXPECT_LE(listed->assets.size(), 3U);
    all.insert(all.end(), listed->assets.begin(), listed->assets.end());
  }
  ASSERT_EQ(all.size(), 8U);
  std::vector<std::string> ids;
  for (const auto& asset : all) ids.push_back(asset.id);
  EXPECT_EQ(ids, (std::vector<std::string>{system1, system2, system3, foreign, inverter->id, battery, pv, meter}));

  const domain::ConcertoAsset& system = all[0];
  EXPECT_EQ(system.remote_id, "sys-1");
  EXPECT_EQ(system.asset_type, domain::AssetType::kSystem);
  EXPECT_EQ(system.adapter_name, kAdapter);
  EXPECT_EQ(system.name, "PWRcell system sys-1");
  EXPECT_EQ(system.parent_id, std::nullopt);
  ASSERT_TRUE(system.site.has_value());
  EXPECT_EQ(system.site->id, site->id);
  const std::vector<domain::AssetChild> expected_children = {
      {inverter->id,
       "RCP-INV-1",
       domain::AssetType::kInverter,
       {{battery, "RCP-BAT-1", domain::AssetType::kBattery, {}},
        {pv, "RCP-PV-1", domain::AssetType::kPhotovoltaic, {}}}},
      {meter, "sys-1-meter", domain::AssetType::kSiteMeter, {}},
  };
  EXPECT_EQ(system.children, expected_children);
  EXPECT_EQ(all[3].adapter_name, "another-adapter");
  EXPECT_EQ(all[5].energy_capacity_kwh, 18);
  EXPECT_TRUE(all[5].simulated);
  EXPECT_EQ(all[5].parent_id, inverter->id);

  auto by_remote_id = client->AssetByRemoteId(domain::AssetType::kSystem, "sys-1");
  ASSERT_TRUE(by_remote_id.ok()) << by_remote_id.status().ToString();
  ASSERT_TRUE(by_remote_id->has_value());
  EXPECT_EQ(**by_remote_id, system);
  auto wrong_type = client->AssetByRemoteId(domain::AssetType::kInverter, "sys-1");
  ASSERT_TRUE(wrong_type.ok());
  EXPECT_FALSE(wrong_type->has_value());

  auto bad_page = client->ListAssets(1, 501);
  EXPECT_EQ(bad_page.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Count("ListAssets", "graphql_error"), 0);  // refused without a request
}

TEST_F(ConcertoClientTest, DuplicatesAreAlreadyExistsAndUnknownIdsNotFound) {
  auto client = Client(Options());
  const domain::CreateSiteRequest request{"ces-site-9", "Jones", "", std::nullopt, std::nullopt};
  auto created = client->CreateSite(request);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->timezone, "");
  auto again = client->CreateSite(request);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr("CONFLICT"));
  EXPECT_EQ(Count("CreateSite", "graphql_error"), 1);
  EXPECT_EQ(metrics_.Value(kRetries, {{"operation", "CreateSite"}}), 0);

  auto found = client->SiteByRemoteId("ces-site-9");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, *created);
  auto missing = client->SiteByRemoteId("ces-site-404");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  const std::string system = Enroll("sys-9");
  domain::CreateAssetRequest asset;
  asset.remote_id = "sys-9";
  asset.name = "again";
  asset.asset_type = domain::AssetType::kSystem;
  asset.adapter_name = kAdapter;
  EXPECT_EQ(client->CreateAsset(asset).status().code(), StatusCode::kAlreadyExists);
  asset.asset_type = domain::AssetType::kInverter;
  asset.parent_id = "424242";
  EXPECT_EQ(client->CreateAsset(asset).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(client->UpdateAssetRemoteState({system, domain::RemoteState::kOffline, "no telemetry for 960 s"}).ok());
  ASSERT_TRUE(client->UpdateSiteRemoteState({created->id, domain::RemoteState::kError, "CES: DISCONNECTED"}).ok());
  const json history = admin_->Get("/admin/remote-states?id=" + system);
  ASSERT_EQ(history.at("count"), 1);
  EXPECT_EQ(history.at("history")[0].at("state"), "OFFLINE");
  EXPECT_EQ(history.at("history")[0].at("reason"), "no telemetry for 960 s");
  const json site_history = admin_->Get("/admin/remote-states?kind=site");
  ASSERT_EQ(site_history.at("count"), 1);
  EXPECT_EQ(site_history.at("history")[0].at("state"), "ERROR");
  auto read_back = client->AssetByRemoteId(domain::AssetType::kSystem, "sys-9");
  ASSERT_TRUE(read_back.ok() && read_back->has_value());
  EXPECT_EQ((*read_back)->remote_state, domain::RemoteState::kOffline);

  auto unknown = client->UpdateAssetRemoteState({"999999", domain::RemoteState::kOnline, ""});
  EXPECT_EQ(unknown.code(), StatusCode::kNotFound) << unknown.ToString();
  // A site id is not an asset id.
  EXPECT_EQ(client->UpdateAssetRemoteState({created->id, domain::RemoteState::kOnline, "x"}).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(client->UpdateSiteRemoteState({system, domain::RemoteState::kOnline, "x"}).code(), StatusCode::kNotFound);
  domain::UpdateAssetRequest update;
  update.id = "999999";
  EXPECT_EQ(client->UpdateAsset(update).status().code(), StatusCode::kNotFound);
}

TEST_F(ConcertoClientTest, IngestRefusesMoreThan500PointsWithoutARequest) {
  auto client = Client(Options());
  std::vector<domain::TelemetryPoint> points(domain::kMaxPointsPerIngest + 1);
  for (std::size_t i = 0; i < points.size(); ++i) {
    points[i] = {"1", domain::Metric::kRealPower, FromUnixMillis(1'784'000'000'000 + static_cast<long long>(i) * 1000), 1};
  }
  auto result = client->IngestTelemetry(points);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("501"));
  EXPECT_EQ(Stats().at("requests"), 0);  // not even an authentication
}

TEST_F(ConcertoClientTest, IngestCountsDuplicatesAndRejectsUnknownAssets) {
  auto client = Client(Options());
  const std::string system = Enroll("sys-t");
  const Timestamp t0 = *ParseIso8601("2026-06-21T10:00:00Z");
  std::vector<domain::TelemetryPoint> points = {
      {system, domain::Metric::kRealPower, t0, 1.5},
      {system, domain::Metric::kStateOfCharge, t0, 80},
      {system, domain::Metric::kRealPower, t0 + std::chrono::milliseconds(300'250), -2.25},
  };
  auto first = client->IngestTelemetry(points);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, (domain::IngestResult{3, 0, {}}));

  points.push_back({system, domain::Metric::kRealPower, t0 + std::chrono::minutes(10), 3});
  points.push_back({"999999", domain::Metric::kVoltage, t0, 240});
  auto second = client->IngestTelemetry(points);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->accepted, 1);
  EXPECT_EQ(second->duplicates, 3);
  ASSERT_EQ(second->rejected.size(), 1U);
  EXPECT_EQ(second->rejected[0].index, 4);
  EXPECT_FALSE(second->rejected[0].message.empty());

  const json stored = admin_->Get("/admin/telemetry?assetId=" + system + "&metric=REAL_POWER");
  ASSERT_EQ(stored.at("count"), 3);
  EXPECT_EQ(stored.at("points")[1].at("value"), -2.25);
  EXPECT_EQ(ParseIso8601(stored.at("points")[1].at("timestamp").get<std::string>()),
            t0 + std::chrono::milliseconds(300'250));
  EXPECT_EQ(Stats().at("duplicates"), 3);

  auto empty = client->IngestTelemetry({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, domain::IngestResult{});
}

TEST_F(ConcertoClientTest, MissingCredentialsSecretIsAFailedPrecondition) {
  MemorySecretStore empty;
  ConcertoClient client(Options(), empty, clock_, nullptr);  // metrics are optional
  auto page = client.ListAssets(1, 10);
  ASSERT_FALSE(page.ok());
  EXPECT_EQ(page.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(page.status().message(), HasSubstr(kSecretId));
  EXPECT_EQ(Stats().at("requests"), 0);
}

TEST(ConcertoClientOptions, FromConfigCopiesTheDeploymentSettings) {
  config::ConcertoConfig config;
  config.root_url = "https://concerto.example.com";
  config.credentials_secret = "Other";
  config.timeout_s = std::chrono::seconds(12);
  config.max_retries = 5;
  config.max_requests_per_second = 7.5;
  config.token_renewal_s = std::chrono::seconds(900);
  const ConcertoClientOptions options = ConcertoClientOptions::FromConfig(config);
  EXPECT_EQ(options.root_url, "https://concerto.example.com");
  EXPECT_EQ(options.credentials_secret, "Other");
  EXPECT_EQ(options.timeout, std::chrono::seconds(12));
  EXPECT_EQ(options.max_retries, 5);
  EXPECT_EQ(options.max_requests_per_second, 7.5);
  EXPECT_EQ(options.token_renewal, std::chrono::seconds(900));
}

}  // namespace
}  // namespace pwrcell::adapters
