// The serve composition root in process: ServeApp over a temporary store, listeners on port 0,
// a fake clock and in-memory secrets; Concerto and CES point at a closed port (nothing is posted).
#include "runtime/serve/serve.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_secret_store.h"
#include "common/base64.h"
#include "test_records.h"

namespace pwrcell::runtime::serve {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class ServeAppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "serve-app-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    config_.storage.path = (dir_ / "store.db").string();
    config_.telemetry.listen = {"127.0.0.1", 0};
    config_.admin.listen = {"127.0.0.1", 0};
    // Nothing listens on port 1: a request, should the scheduler make one, fails at once.
    config_.concerto.root_url = "http://127.0.0.1:1";
    config_.ces.root_url = "http://127.0.0.1:1";
    config_.concerto.timeout_s = std::chrono::seconds(1);
    config_.ces.timeout_s = std::chrono::seconds(1);
    ASSERT_TRUE(secrets_.Put("ConcertoCredentials", R"({"email": "a@example.com", "password": "p"})").ok());
    ASSERT_TRUE(secrets_.Put("CesCredentials", R"({"api_key": "k"})").ok());
  }

  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<ServeApp> Create() {
    auto app = ServeApp::Create(config_, clock_, secrets_);
    EXPECT_TRUE(app.ok()) << app.status().ToString();
    return app.ok() ? std::move(*app) : nullptr;
  }

  static httplib::Result Get(int port, const std::string& path) {
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    return client.Get(path);
  }

  std::filesystem::path dir_;
  config::Config config_;
  adapters::FakeClock clock_;
  adapters::MemorySecretStore secrets_;
};

TEST_F(ServeAppTest, StartsAnswersHealthAndReadinessOnTheBoundAdminPortAndStops) {
  auto app = Create();
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->admin_port(), 0);  // nothing bound before Start
  EXPECT_EQ(app->ingest_port(), 0);

  Status started = app->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const int admin_port = app->admin_port();
  EXPECT_GT(admin_port, 0);
  EXPECT_GT(app->ingest_port(), 0);
  EXPECT_NE(app->ingest_port(), admin_port);

  httplib::Result health = Get(admin_port, "/healthz");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json::parse(health->body), (json{{"status", "ok"}}));
  httplib::Result ready = Get(admin_port, "/readyz");
  ASSERT_TRUE(ready) << httplib::to_string(ready.error());
  EXPECT_EQ(ready->status, 200) << ready->body;
  EXPECT_EQ(json::parse(ready->body), (json{{"status", "ready"}}));
  EXPECT_TRUE(std::filesystem::exists(config_.storage.path));

  Status stopped = app->Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_EQ(app->admin_port(), 0);
  EXPECT_FALSE(Get(admin_port, "/healthz"));  // the admin listener is closed
  EXPECT_TRUE(app->Stop().ok());              // idempotent
  EXPECT_EQ(app->Start().code(), StatusCode::kFailedPrecondition);  // an app starts once
}

// The start line names the Concerto and CES URLs; a password inside one is shown as "***".
TEST_F(ServeAppTest, TheStartLineHidesAPasswordInsideARootUrl) {
  config_.concerto.root_url = "http://operator:Start-Pa55word@127.0.0.1:1";
  config_.ces.root_url = "http://key-only-Start-T0ken@127.0.0.1:1";
  auto app = Create();
  ASSERT_NE(app, nullptr);
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  const Status started = app->Start();
  EXPECT_TRUE(app->Stop().ok());
  spdlog::set_default_logger(previous);
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_THAT(log.str(), HasSubstr("Concerto http://operator:***@127.0.0.1:1, CES http://***@127.0.0.1:1"));
  EXPECT_THAT(log.str(), Not(HasSubstr("Start-Pa55word")));
  EXPECT_THAT(log.str(), Not(HasSubstr("Start-T0ken")));
}

// Issue 13: a non-loopback admin address needs allow_remote and a bearer token from the secrets;
// a missing token secret stops the start, naming the key, before anything listens.
TEST_F(ServeAppTest, ARemoteAdminAddressNeedsAllowRemoteAndItsTokenSecret) {
  config_.admin.listen = {"0.0.0.0", 0};
  auto refused = ServeApp::Create(config_, clock_, secrets_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("admin.allow_remote"));

  config_.admin.allow_remote = true;
  config_.admin.access_key_secret = "AdminKey";
  auto app = Create();
  ASSERT_NE(app, nullptr);
  const Status started = app->Start();
  EXPECT_EQ(started.code(), StatusCode::kNotFound) << started.ToString();
  EXPECT_THAT(started.message(), HasSubstr("admin.access_key_secret"));
  EXPECT_EQ(app->admin_port(), 0);
  EXPECT_EQ(app->ingest_port(), 0);

  ASSERT_TRUE(secrets_.Put("AdminKey", R"({"api_key": "serve-admin-T0ken"})").ok());
  auto remote = Create();
  ASSERT_NE(remote, nullptr);
  const Status ok = remote->Start();
  ASSERT_TRUE(ok.ok()) << ok.ToString();
  httplib::Client client("127.0.0.1", remote->admin_port());
  httplib::Result anonymous = client.Get("/api/devices");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  const httplib::Headers token = {{"Authorization", "Bearer serve-admin-T0ken"}};
  httplib::Result authorized = client.Get("/api/devices", token);
  ASSERT_TRUE(authorized);
  EXPECT_EQ(authorized->status, 200);
  EXPECT_TRUE(remote->Stop().ok());
}

// A configured CA file that cannot be used stops the start naming the key and the path.
TEST_F(ServeAppTest, CreateFailsNamingACaFileThatCannotBeUsed) {
  config_.ces.ca_file = (dir_ / "missing-ca.pem").string();
  auto missing = ServeApp::Create(config_, clock_, secrets_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("ces.ca_file " + config_.ces.ca_file));

  const std::string not_pem = (dir_ / "not-a-ca.pem").string();
  std::ofstream(not_pem) << "hello\n";
  config_.ces.ca_file = "";
  config_.concerto.ca_file = not_pem;
  auto wrong = ServeApp::Create(config_, clock_, secrets_);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("concerto.ca_file " + not_pem + ": no PEM certificate"));
}

// A listening socket on a free loopback port, closed at the end of the test.
class TakenPort {
 public:
  TakenPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 || listen(fd_, 1) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ADD_FAILURE() << "cannot take a port";
      return;
    }
    port_ = ntohs(address.sin_port);
  }
  ~TakenPort() {
    if (fd_ >= 0) close(fd_);
  }
  TakenPort(const TakenPort&) = delete;
  TakenPort& operator=(const TakenPort&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

TEST_F(ServeAppTest, StartFailsWithAClearStatusWhenTheAdminPortIsTaken) {
  TakenPort taken;
  ASSERT_GT(taken.port(), 0);
  config_.admin.listen = {"127.0.0.1", taken.port()};
  auto app = Create();
  ASSERT_NE(app, nullptr);

  Status started = app->Start();
  EXPECT_EQ(started.code(), StatusCode::kUnavailable) << started.ToString();
  const std::string address = "127.0.0.1:" + std::to_string(taken.port());
  EXPECT_EQ(started.message().rfind("admin server: cannot listen on " + address, 0), 0u) << started.ToString();
  EXPECT_EQ(app->admin_port(), 0);
  EXPECT_EQ(app->ingest_port(), 0);  // nothing was left listening
  EXPECT_TRUE(app->Stop().ok());
  EXPECT_EQ(app->Start().code(), StatusCode::kFailedPrecondition);
}

TEST_F(ServeAppTest, CreateFailsNamingAMissingCredentialsSecret) {
  adapters::MemorySecretStore only_concerto;
  ASSERT_TRUE(only_concerto.Put("ConcertoCredentials", R"({"email": "a@example.com", "password": "p"})").ok());
  auto app = ServeApp::Create(config_, clock_, only_concerto);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), StatusCode::kNotFound) << app.status().ToString();
  EXPECT_EQ(app.status().message().rfind("secret CesCredentials", 0), 0u) << app.status().ToString();
}

TEST_F(ServeAppTest, CreateFailsOnACredentialsSecretOfTheWrongShapeWithoutEchoingIt) {
  struct Case {
    const char* concerto;
    const char* ces;
    const char* named;
  };
  for (const Case& c : {Case{R"({"email": "a@example.com"})", R"({"api_key": "k"})", "\"password\""},
                        Case{R"({"email": "a@example.com", "password": 12345})", R"({"api_key": "k"})", "\"password\""},
                        Case{R"(["a@example.com", "p4ss-not-shown"])", R"({"api_key": "k"})", "not a JSON object"},
                        Case{R"({"email": "a@example.com", "password": "p4ss-not-shown"})", R"({"api_key": 7})",
                             "\"api_key\""},
                        Case{R"({"email": "a@example.com", "password": "p4ss-not-shown"})", R"({})", "\"api_key\""}}) {
    adapters::MemorySecretStore secrets;
    ASSERT_TRUE(secrets.Put("ConcertoCredentials", c.concerto).ok());
    ASSERT_TRUE(secrets.Put("CesCredentials", c.ces).ok());
    auto app = ServeApp::Create(config_, clock_, secrets);
    ASSERT_FALSE(app.ok()) << c.concerto << " " << c.ces;
    EXPECT_EQ(app.status().code(), StatusCode::kFailedPrecondition) << app.status().ToString();
    EXPECT_THAT(app.status().message(), HasSubstr(c.named));
    EXPECT_THAT(app.status().message(), Not(HasSubstr("p4ss-not-shown")));
  }
}

TEST_F(ServeAppTest, FirehoseDeliveryIsWiredToTheSecretStoreAndTheIngestQueue) {
  ASSERT_TRUE(secrets_.Put("FirehoseAccessKey", R"({"api_key": "fh-key"})").ok());
  config_.telemetry.firehose_access_key_secret = "FirehoseAccessKey";
  auto app = Create();
  ASSERT_NE(app, nullptr);
  ASSERT_TRUE(app->Start().ok());
  httplib::Client client("127.0.0.1", app->ingest_port());
  client.set_read_timeout(10, 0);
  const json delivery = {{"requestId", "serve-1"},
                         {"timestamp", 1},
                         {"records", {{{"data", Base64Encode(http::testing::ValidRecordBytes("RCP-1"))}}}}};
  httplib::Result res =
      client.Post("/v1/firehose", {{"X-Amz-Firehose-Access-Key", "fh-key"}}, delivery.dump(), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["requestId"], "serve-1");
  httplib::Result metrics = Get(app->admin_port(), "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("pwrcell_ingest_firehose_requests_total{status=\"200\"} 1"), std::string::npos);
  EXPECT_NE(metrics->body.find("pwrcell_records_total{outcome=\"received\"} 1"), std::string::npos);
  EXPECT_EQ(metrics->body.find("pwrcell_records_total{outcome=\"rejected\"} 1"), std::string::npos);
  EXPECT_TRUE(app->Stop().ok());
}

TEST_F(ServeAppTest, StartFailsNamingAMissingFirehoseSecretAndLeavesNothingListening) {
  config_.telemetry.firehose_access_key_secret = "NoSuchSecret";
  auto app = Create();
  ASSERT_NE(app, nullptr);
  const Status started = app->Start();
  EXPECT_EQ(started.code(), StatusCode::kNotFound) << started.ToString();
  EXPECT_EQ(started.message().rfind("telemetry ingest: telemetry.firehose_access_key_secret: secret NoSuchSecret", 0),
            0u)
      << started.ToString();
  EXPECT_EQ(app->admin_port(), 0);
  EXPECT_EQ(app->ingest_port(), 0);
}

TEST_F(ServeAppTest, CreateFailsNamingAStoreThatCannotBeOpened) {
  config_.storage.path = (dir_ / "no-such-dir" / "store.db").string();
  auto app = ServeApp::Create(config_, clock_, secrets_);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), StatusCode::kUnavailable) << app.status().ToString();
  EXPECT_EQ(app.status().message().rfind("store " + config_.storage.path, 0), 0u) << app.status().ToString();
}

}  // namespace
}  // namespace pwrcell::runtime::serve
