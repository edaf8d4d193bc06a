// TLS certificate verification of the Concerto and CES clients (issue 13, "Exposure"): each
// simulator is put behind a local HTTPS proxy whose certificate is self-signed (made by the
// openssl command line here). The clients refuse it by default, naming certificate verification
// and counting a transport_error, and reach the simulator through it once ca_file names the
// certificate.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "adapters/ces/ces_client.h"
#include "adapters/concerto/concerto_client.h"
#include "adapters/memory/memory_secret_store.h"
#include "adapters/system/system_clock.h"
#include "sim_process.h"

namespace pwrcell::adapters {
namespace {

namespace fs = std::filesystem;
using integration::SimBinary;
using integration::SimProcess;
using integration::SourcePath;
using nlohmann::json;
using ::testing::HasSubstr;

// Runs a shell command; its exit status and output.
std::pair<int, std::string> RunShell(const std::string& command) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::array<char, 4096> buffer;
  std::size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// HTTPS on a free loopback port, forwarding every GET and POST (target, headers, body) to a plain
// HTTP upstream and its answer back.
class TlsProxy {
 public:
  TlsProxy(const std::string& cert, const std::string& key, const std::string& upstream)
      : server_(cert.c_str(), key.c_str()), upstream_(upstream) {
    const auto forward = [this](const httplib::Request& req, httplib::Response& res) {
      httplib::Client client(upstream_);
      client.set_read_timeout(10, 0);
      httplib::Headers headers;
      for (const auto& [name, value] : req.headers) {
        if (name == "Host" || name == "Content-Length" || name == "Accept-Encoding" || name.starts_with("REMOTE_") ||
            name.starts_with("LOCAL_")) {
          continue;
        }
        headers.emplace(name, value);
      }
      httplib::Result answer = req.method == "POST"
                                   ? client.Post(req.target.c_str(), headers, req.body,
                                                 req.get_header_value("Content-Type").c_str())
                                   : client.Get(req.target.c_str(), headers);
      if (!answer) {
        res.status = 502;
        return;
      }
      res.status = answer->status;
      res.set_content(answer->body, answer->get_header_value("Content-Type").c_str());
    };
    server_.Get(".*", forward);
    server_.Post(".*", forward);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~TlsProxy() {
    server_.stop();
    thread_.join();
  }
  TlsProxy(const TlsProxy&) = delete;
  TlsProxy& operator=(const TlsProxy&) = delete;

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  bool ok() const { return server_.is_valid() && port_ > 0; }

 private:
  httplib::SSLServer server_;
  std::string upstream_;
  int port_ = 0;
  std::thread thread_;
};

class TlsVerificationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tls-verification-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    cert_ = (dir_ / "cert.pem").string();
    key_ = (dir_ / "key.pem").string();
    // A P-256 key (quick to make) and a one-day self-signed certificate for 127.0.0.1.
    const auto [status, output] = RunShell(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
        key_ + " -out " + cert_ + " 2>&1");
    ASSERT_EQ(status, 0) << output;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Whether `family` has a non-zero sample with outcome="transport_error".
  bool Counted(const std::string& family) const {
    std::istringstream lines(metrics_.RenderPrometheus());
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with(family + "{") && line.find("outcome=\"transport_error\"") != std::string::npos &&
          !line.ends_with(" 0")) {
        return true;
      }
    }
    return false;
  }

  fs::path dir_;
  std::string cert_;
  std::string key_;
  MemorySecretStore secrets_;
  SystemClock clock_;
  Metrics metrics_;
};

TEST_F(TlsVerificationTest, ConcertoRefusesASelfSignedServerUnlessItsCaFileIsConfigured) {
  auto sim = SimProcess::Start(
      {SimBinary("concerto-sim"), "--port", "0", "--email", "ops@example.com", "--password", "Pa55-tls-test"});
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  TlsProxy proxy(cert_, key_, (*sim)->url());
  ASSERT_TRUE(proxy.ok());
  ASSERT_TRUE(secrets_.Put("ConcertoCredentials", json{{"email", "ops@example.com"}, {"password", "Pa55-tls-test"}}.dump())
                  .ok());
  ConcertoClientOptions options;
  options.root_url = proxy.url();
  options.timeout = std::chrono::seconds(10);
  options.max_retries = 1;
  options.max_requests_per_second = 0;
  options.backoff.initial = std::chrono::milliseconds(10);
  options.backoff.max_delay = std::chrono::milliseconds(20);

  ConcertoClient refusing(options, secrets_, clock_, &metrics_);  // ca_file "": the system's CAs only
  auto refused = refusing.ListAssets(1, 10);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_THAT(refused.status().message(), HasSubstr("TLS certificate verification failed"));
  EXPECT_THAT(refused.status().message(), HasSubstr(proxy.url()));
  EXPECT_TRUE(Counted("pwrcell_concerto_requests_total")) << metrics_.RenderPrometheus();

  options.ca_file = cert_;
  ConcertoClient trusting(options, secrets_, clock_, &metrics_);
  auto page = trusting.ListAssets(1, 10);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ((*sim)->Stop(), 0);
}

TEST_F(TlsVerificationTest, CesRefusesASelfSignedServerUnlessItsCaFileIsConfigured) {
  auto sim = SimProcess::Start({SimBinary("ces-sim"), "--port", "0", "--api-key", "ces-key-Tls-0123456789",
                                "--scenario", SourcePath("sim/scenarios/demo-50.toml")});
  ASSERT_TRUE(sim.ok()) << sim.status().ToString();
  TlsProxy proxy(cert_, key_, (*sim)->url());
  ASSERT_TRUE(proxy.ok());
  ASSERT_TRUE(secrets_.Put("CesCredentials", json{{"api_key", "ces-key-Tls-0123456789"}}.dump()).ok());
  CesClientOptions options;
  options.root_url = proxy.url();
  options.timeout = std::chrono::seconds(10);
  options.max_retries = 1;
  options.max_requests_per_second = 0;
  options.backoff.initial = std::chrono::milliseconds(10);
  options.backoff.max_delay = std::chrono::milliseconds(20);

  CesClient refusing(options, secrets_, clock_, &metrics_);
  auto refused = refusing.GetStatus({"00000000-no-such-system"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_THAT(refused.status().message(), HasSubstr("TLS certificate verification failed"));
  EXPECT_TRUE(Counted("pwrcell_ces_requests_total")) << metrics_.RenderPrometheus();

  // A CA file that is not the server's CA is refused just the same.
  const std::string other_cert = (dir_ / "other.pem").string();
  const auto [status, output] = RunShell(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=other "
      "-keyout " + (dir_ / "other-key.pem").string() + " -out " + other_cert + " 2>&1");
  ASSERT_EQ(status, 0) << output;
  options.ca_file = other_cert;
  CesClient wrong_ca(options, secrets_, clock_, &metrics_);
  auto still_refused = wrong_ca.GetStatus({"00000000-no-such-system"});
  ASSERT_FALSE(still_refused.ok());
  EXPECT_THAT(still_refused.status().message(), HasSubstr("TLS certificate verification failed"));

  options.ca_file = cert_;
  CesClient trusting(options, secrets_, clock_, &metrics_);
  auto batch = trusting.GetStatus({"00000000-no-such-system"});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ((*sim)->Stop(), 0);
}

}  // namespace
}  // namespace pwrcell::adapters
