#include "runtime/http/admin_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdint>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/memory/memory_device_store.h"
#include "adapters/memory/memory_secret_store.h"

namespace pwrcell::runtime::http {
namespace {

// The admin configuration on 127.0.0.1:`port`, set field by field: a braced AdminConfig{...}
// temporary trips GCC 12's false maybe-uninitialized warning (see TelemetryConfig).
config::AdminConfig AdminOn(std::uint16_t port) {
  config::AdminConfig config;
  config.listen = {"127.0.0.1", port};
  return config;
}


using nlohmann::json;

domain::DeviceRecord Device(std::string remote_id, bool simulated, std::optional<domain::RemoteState> state) {
  domain::DeviceRecord record;
  record.remote_id = std::move(remote_id);
  record.name = "System " + record.remote_id;
  record.is_simulated = simulated;
  record.remote_state = state;
  return record;
}

std::vector<std::string> RemoteIds(const json& answer) {
  std::vector<std::string> ids;
  for (const auto& device : answer.at("devices")) ids.push_back(device.at("remote_id").get<std::string>());
  return ids;
}

// A store whose backend is down: every call is kUnavailable.
class UnavailableDeviceStore final : public ports::DeviceStore {
 public:
  Result<std::optional<domain::DeviceRecord>> Get(const std::string&) override { return Down(); }
  Result<std::optional<domain::DeviceRecord>> FindByInverterRcpn(const std::string&) override { return Down(); }
  Result<std::optional<ports::DeviceKey>> FindKeyByInverterRcpn(const std::string&) override { return Down(); }
  Result<bool> RecordHeard(const std::string&, Timestamp, const std::optional<domain::InverterReading>&) override {
    return Down();
  }
  Status RecordHeardBatch(const std::vector<ports::HeardUpdate>&) override { return Down(); }
  Result<std::vector<domain::DeviceRecord>> List() override { return Down(); }
  Result<std::vector<domain::DeviceRecord>> ListPage(const ports::DeviceFilter&, const std::string&,
                                                     std::size_t) override {
    return Down();
  }
  Result<std::vector<ports::DeviceKey>> ListKeys(const ports::DeviceFilter&, const std::string&, std::size_t) override {
    return Down();
  }
  Result<std::int64_t> Count(const ports::DeviceFilter&) override { return Down(); }
  Result<std::vector<ports::DeviceTally>> Tally() override { return Down(); }
  Result<std::vector<domain::DeviceRecord>> ListUnsettled(Timestamp, const std::string&, std::size_t) override {
    return Down();
  }
  Result<std::vector<domain::DeviceRecord>> ListBySite(const std::string&) override { return Down(); }
  Result<domain::DeviceRecord> Put(const domain::DeviceRecord&) override { return Down(); }
  Status Remove(const std::string&, std::int64_t) override { return Down(); }

 private:
  static Status Down() { return UnavailableError("database is locked"); }
};

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(store_.Put(Device("sys-b", true, domain::RemoteState::kOffline)).ok());
    ASSERT_TRUE(store_.Put(Device("sys-a", false, domain::RemoteState::kOnline)).ok());
    ASSERT_TRUE(store_.Put(Device("sys-c", false, std::nullopt)).ok());
    ASSERT_TRUE(store_.Put(Device("sys-d", true, domain::RemoteState::kOnline)).ok());

    AdminHooks hooks;
    hooks.readiness = [this] {
      std::lock_guard lock(mutex_);
      return std::pair<bool, std::string>{ready_, ready_ ? "" : "telemetry source catching up"};
    };
    hooks.refresh_gauges = [this] {
      ++refreshes_;
      metrics_.Set("pwrcell_queue_depth", {{"queue", "concerto"}}, 7);
    };
    server_ = std::make_unique<AdminServer>(AdminOn(0), store_, metrics_, hooks);
    ASSERT_TRUE(server_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10, 0);
  }

  json GetJson(const std::string& path, int expected_status) {
    httplib::Result res = client_->Get(path);
    if (!res) {
      ADD_FAILURE() << path << ": " << httplib::to_string(res.error());
      return nullptr;
    }
    EXPECT_EQ(res->status, expected_status) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json") << path;
    return json::parse(res->body);
  }

  std::mutex mutex_;
  bool ready_ = false;
  std::atomic<int> refreshes_{0};
  Metrics metrics_;
  adapters::MemoryDeviceStore store_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminServerTest, HealthzIsOk) {
  EXPECT_EQ(GetJson("/healthz", 200), (json{{"status", "ok"}}));
}

TEST_F(AdminServerTest, ReadyzFollowsTheReadinessHook) {
  EXPECT_EQ(GetJson("/readyz", 503), (json{{"status", "not ready"}, {"reason", "telemetry source catching up"}}));
  {
    std::lock_guard lock(mutex_);
    ready_ = true;
  }
  EXPECT_EQ(GetJson("/readyz", 200), (json{{"status", "ready"}}));
}

TEST_F(AdminServerTest, MetricsRefreshesGaugesThenRendersPrometheusText) {
  metrics_.Increment("pwrcell_ingest_requests_total", {{"status", "200"}}, 3);
  httplib::Result res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u)
      << res->get_header_value("Content-Type");
  EXPECT_EQ(refreshes_.load(), 1);
  EXPECT_NE(res->body.find("pwrcell_queue_depth{queue=\"concerto\"} 7\n"), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("pwrcell_ingest_requests_total{status=\"200\"} 3\n"), std::string::npos) << res->body;
  // The answer is rendered before it is counted in pwrcell_admin_requests_total.
  std::string now = metrics_.RenderPrometheus();
  const std::string counted = "pwrcell_admin_requests_total{status=\"200\"} 1\n";
  ASSERT_NE(now.find(counted), std::string::npos) << now;
  now.erase(now.find(counted), counted.size());
  EXPECT_EQ(res->body, now);
}

TEST_F(AdminServerTest, DevicesListsEveryRecordWithItsKind) {
  const json answer = GetJson("/api/devices", 200);
  EXPECT_EQ(answer["count"], 4);
  EXPECT_EQ(RemoteIds(answer), (std::vector<std::string>{"sys-a", "sys-b", "sys-c", "sys-d"}));
  const json& a = answer["devices"][0];
  EXPECT_EQ(a["kind"], "real");
  EXPECT_EQ(a["name"], "System sys-a");
  EXPECT_EQ(a["remote_state"], "ONLINE");
  EXPECT_EQ(a["commissioning"]["state"], "NOT_REQUESTED");
  EXPECT_EQ(a["version"], 1);
  EXPECT_EQ(answer["devices"][1]["kind"], "simulated");
  EXPECT_TRUE(answer["devices"][2]["remote_state"].is_null());
}

TEST_F(AdminServerTest, DevicesFilterByRemoteStateAndSimulated) {
  EXPECT_EQ(RemoteIds(GetJson("/api/devices?remote_state=ONLINE", 200)), (std::vector<std::string>{"sys-a", "sys-d"}));
  EXPECT_EQ(RemoteIds(GetJson("/api/devices?remote_state=OFFLINE", 200)), (std::vector<std::string>{"sys-b"}));
  EXPECT_EQ(RemoteIds(GetJson("/api/devices?remote_state=ERROR", 200)), std::vector<std::string>{});
  EXPECT_EQ(RemoteIds(GetJson("/api/devices?simulated=true", 200)), (std::vector<std::string>{"sys-b", "sys-d"}));
  EXPECT_EQ(RemoteIds(GetJson("/api/devices?simulated=false", 200)), (std::vector<std::string>{"sys-a", "sys-c"}));
  const json both = GetJson("/api/devices?remote_state=ONLINE&simulated=true", 200);
  EXPECT_EQ(both["count"], 1);
  EXPECT_EQ(RemoteIds(both), (std::vector<std::string>{"sys-d"}));
}

TEST_F(AdminServerTest, DevicesRejectsUnknownFilterValues) {
  EXPECT_NE(GetJson("/api/devices?remote_state=online", 400)["error"].get<std::string>().find("remote_state"),
            std::string::npos);
  EXPECT_NE(GetJson("/api/devices?simulated=yes", 400)["error"].get<std::string>().find("simulated"),
            std::string::npos);
}

TEST_F(AdminServerTest, OneDeviceByRemoteIdOr404) {
  const json b = GetJson("/api/devices/sys-b", 200);
  EXPECT_EQ(b["remote_id"], "sys-b");
  EXPECT_EQ(b["kind"], "simulated");
  EXPECT_EQ(b["remote_state"], "OFFLINE");

  EXPECT_EQ(GetJson("/api/devices/nope", 404), (json{{"error", "no device with remote_id nope"}}));
}

TEST_F(AdminServerTest, DashboardIsASelfContainedPage) {
  httplib::Result res = client_->Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(res->body.find("<table"), std::string::npos);
  EXPECT_NE(res->body.find("fetch(\"/api/devices\""), std::string::npos);
  EXPECT_NE(res->body.find("setInterval(refresh, 5000)"), std::string::npos);
  // Each system's inverters (several per system, SPEC section 6) with their newest state.
  EXPECT_NE(res->body.find("<th>inverters</th>"), std::string::npos);
  EXPECT_NE(res->body.find("d.inverter_readings"), std::string::npos);
  // No external assets: no absolute URLs and no <script src> / <link> to load.
  EXPECT_EQ(res->body.find("http://"), std::string::npos);
  EXPECT_EQ(res->body.find("https://"), std::string::npos);
  EXPECT_EQ(res->body.find("<script src"), std::string::npos);
  EXPECT_EQ(res->body.find("<link"), std::string::npos);
}

TEST_F(AdminServerTest, OtherMethodsAre405AndUnknownPaths404) {
  httplib::Result post = client_->Post("/healthz", "", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");

  httplib::Result del = client_->Delete("/api/devices/sys-a");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);

  EXPECT_TRUE(GetJson("/nope", 404)["error"].is_string());
}

TEST_F(AdminServerTest, StartOnATakenPortFailsNamingTheAddress) {
  AdminServer second(AdminOn(static_cast<std::uint16_t>(server_->port())), store_, metrics_);
  const Status started = second.Start();
  EXPECT_EQ(started.code(), StatusCode::kUnavailable);
  EXPECT_EQ(started.message(), "cannot listen on 127.0.0.1:" + std::to_string(server_->port()) + ": address in use");
}

// Issue 13: the admin API had no auth. With admin.access_key_secret, every request but /healthz
// needs "Authorization: Bearer <api_key>"; refusals are 401, counted by reason, and the key is
// never echoed.
class AdminServerTokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(secrets_.Put("AdminKey", R"({"api_key": "admin-T0ken-value"})").ok());
    ASSERT_TRUE(store_.Put(Device("sys-a", false, domain::RemoteState::kOnline)).ok());
    config::AdminConfig config;
    config.listen = {"127.0.0.1", 0};
    config.access_key_secret = "AdminKey";
    server_ = std::make_unique<AdminServer>(config, store_, metrics_, AdminHooks{}, &secrets_);
    const Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
  }

  httplib::Result Get(const std::string& path, const std::string& authorization) {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(10, 0);
    httplib::Headers headers;
    if (!authorization.empty()) headers.emplace("Authorization", authorization);
    return client.Get(path, headers);
  }

  double Refused(const std::string& reason) const {
    return metrics_.Value("pwrcell_admin_refused_total", {{"reason", reason}});
  }

  Metrics metrics_;
  adapters::MemoryDeviceStore store_;
  adapters::MemorySecretStore secrets_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTokenTest, EveryRouteButHealthzNeedsTheBearerToken) {
  for (const char* path : {"/readyz", "/metrics", "/api/devices", "/api/devices/sys-a", "/"}) {
    httplib::Result none = Get(path, "");
    ASSERT_TRUE(none) << path;
    EXPECT_EQ(none->status, 401) << path;
    EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"pwrcell-admin\"") << path;
    EXPECT_EQ(json::parse(none->body), (json{{"error", "a bearer token is required: Authorization: Bearer"}}));

    httplib::Result wrong = Get(path, "Bearer admin-T0ken-valuX");
    ASSERT_TRUE(wrong) << path;
    EXPECT_EQ(wrong->status, 401) << path;
    EXPECT_EQ(json::parse(wrong->body), (json{{"error", "invalid bearer token"}}));
    EXPECT_EQ(wrong->body.find("admin-T0ken"), std::string::npos);

    httplib::Result basic = Get(path, "Basic admin-T0ken-value");  // the right key, the wrong scheme
    ASSERT_TRUE(basic) << path;
    EXPECT_EQ(basic->status, 401) << path;

    httplib::Result right = Get(path, "bearer admin-T0ken-value");  // the scheme is case-insensitive
    ASSERT_TRUE(right) << path;
    EXPECT_EQ(right->status, 200) << path << ": " << right->body;
  }
  EXPECT_EQ(Refused("missing_key"), 10);  // no header, and a Basic one
  EXPECT_EQ(Refused("wrong_key"), 5);
  httplib::Result metrics = Get("/metrics", "Bearer admin-T0ken-value");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("pwrcell_admin_refused_total{reason=\"wrong_key\"} 5"), std::string::npos);
  EXPECT_EQ(metrics->body.find("admin-T0ken-value"), std::string::npos);

  httplib::Result health = Get("/healthz", "");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST(AdminServerTokenStartTest, AMissingOrMalformedTokenSecretStopsTheStartNamingIt) {
  adapters::MemoryDeviceStore store;
  Metrics metrics;
  adapters::MemorySecretStore secrets;
  config::AdminConfig config;
  config.listen = {"127.0.0.1", 0};
  config.allow_remote = true;
  config.access_key_secret = "AdminKey";
  {
    AdminServer server(config, store, metrics, AdminHooks{}, &secrets);
    const Status started = server.Start();
    EXPECT_EQ(started.code(), StatusCode::kNotFound) << started.ToString();
    EXPECT_NE(started.message().find("admin.access_key_secret"), std::string::npos) << started.ToString();
    EXPECT_NE(started.message().find("AdminKey"), std::string::npos) << started.ToString();
    EXPECT_EQ(server.port(), 0);  // nothing listens
  }
  ASSERT_TRUE(secrets.Put("AdminKey", R"({"token": "s3cret-not-shown"})").ok());
  {
    AdminServer server(config, store, metrics, AdminHooks{}, &secrets);
    const Status started = server.Start();
    EXPECT_EQ(started.code(), StatusCode::kInvalidArgument) << started.ToString();
    EXPECT_NE(started.message().find("api_key"), std::string::npos) << started.ToString();
    EXPECT_EQ(started.message().find("s3cret-not-shown"), std::string::npos) << started.ToString();
    EXPECT_EQ(server.port(), 0);
  }
  {
    AdminServer server(config, store, metrics);  // no secret store at all
    EXPECT_EQ(server.Start().code(), StatusCode::kFailedPrecondition);
  }
}

TEST(AdminServerStoreDownTest, StoreErrorsAre503WithTheStatusText) {
  UnavailableDeviceStore store;
  Metrics metrics;
  AdminServer server(AdminOn(0), store, metrics);
  ASSERT_TRUE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  for (const char* path : {"/api/devices", "/api/devices/sys-a"}) {
    httplib::Result res = client.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 503) << path;
    EXPECT_EQ(json::parse(res->body), (json{{"error", "UNAVAILABLE: database is locked"}})) << path;
  }
  // Health does not depend on the store; readiness without a hook is ready.
  httplib::Result health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  httplib::Result ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
}

}  // namespace
}  // namespace pwrcell::runtime::http
