// The ingest listener serving HTTPS from a certificate and key file (telemetry.tls_cert_file,
// tls_key_file): a self-signed certificate made by the openssl command line in the test, checked
// with curl and cpp-httplib's SSLClient trusting only that certificate.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/memory/memory_secret_store.h"
#include "common/base64.h"
#include "runtime/http/ingest_server.h"
#include "test_records.h"

namespace pwrcell::runtime::http {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ValidRecordBytes;

// Runs a shell command; its exit status and standard output.
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

class IngestTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ingest-tls-XXXXXX").string();
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
    ASSERT_TRUE(secrets_.Put("FirehoseAccessKey", R"({"api_key": "fh-key"})").ok());
    config_.listen = {"127.0.0.1", 0};
    config_.firehose_access_key_secret = "FirehoseAccessKey";
    config_.tls_cert_file = cert_;
    config_.tls_key_file = key_;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<IngestServer> Make() {
    return std::make_unique<IngestServer>(
        config_,
        [this](const std::vector<std::string>& records) {
          std::lock_guard lock(mutex_);
          stored_.insert(stored_.end(), records.begin(), records.end());
          return Status::Ok();
        },
        metrics_, &secrets_);
  }

  fs::path dir_;
  std::string cert_;
  std::string key_;
  adapters::MemorySecretStore secrets_;
  config::TelemetryConfig config_;
  Metrics metrics_;
  std::mutex mutex_;
  std::vector<std::string> stored_;
};

TEST_F(IngestTlsTest, ServesHttpsToCurlTrustingTheCertificate) {
  auto server = Make();
  const Status started = server->Start();
  ASSERT_TRUE(started.ok()) << started.ToString();
  const std::string record = ValidRecordBytes("RCP-TLS-1");
  const std::string body_file = (dir_ / "delivery.json").string();
  std::ofstream(body_file) << json{{"requestId", "tls-request-1"},
                                   {"timestamp", 1578090901599},
                                   {"records", {{{"data", Base64Encode(record)}}}}}
                                  .dump();
  const std::string url = "https://127.0.0.1:" + std::to_string(server->port()) + "/v1/firehose";
  const auto [status, output] = RunShell(
      "curl -sS --cacert " + cert_ + " -H 'Content-Type: application/json' -H 'X-Amz-Firehose-Access-Key: fh-key' " +
      "-H 'X-Amz-Firehose-Request-Id: tls-request-1' --data-binary @" + body_file +
      " -w '\\n%{http_code} %{ssl_verify_result}' " + url + " 2>&1");
  ASSERT_EQ(status, 0) << output;
  const std::string answer = output.substr(0, output.find('\n'));
  EXPECT_EQ(output.substr(output.find('\n') + 1), "200 0") << output;  // status 200, certificate verified
  EXPECT_EQ(json::parse(answer)["requestId"], "tls-request-1") << output;
  std::lock_guard lock(mutex_);
  EXPECT_EQ(stored_, std::vector<std::string>{record});
}

TEST_F(IngestTlsTest, ServesHttpsOnlyAndTls12AtLeast) {
  auto server = Make();
  ASSERT_TRUE(server->Start().ok());
  const int port = server->port();

  httplib::SSLClient tls("127.0.0.1", port);
  tls.set_ca_cert_path(cert_.c_str());
  tls.enable_server_certificate_verification(true);
  tls.set_read_timeout(10, 0);
  httplib::Result ok = tls.Post("/v1/telemetry", ValidRecordBytes("RCP-TLS-2"), "application/x-protobuf");
  ASSERT_TRUE(ok) << httplib::to_string(ok.error());
  EXPECT_EQ(ok->status, 200) << ok->body;

  // Plain HTTP to the HTTPS port gets no HTTP answer.
  httplib::Client plain("127.0.0.1", port);
  plain.set_read_timeout(5, 0);
  httplib::Result refused = plain.Post("/v1/telemetry", ValidRecordBytes("RCP-TLS-3"), "application/x-protobuf");
  EXPECT_TRUE(!refused || refused->status >= 400);

  // A client that does not trust the certificate fails the handshake.
  const auto [untrusted, output] =
      RunShell("curl -sS -o /dev/null https://127.0.0.1:" + std::to_string(port) + "/v1/telemetry 2>&1");
  EXPECT_NE(untrusted, 0) << output;

  // TLS 1.2 handshakes, TLS 1.1 does not (the client's own floor lowered, so that it is the
  // server that refuses).
  const auto handshake = [&](const std::string& version) {
    return RunShell("echo | timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " " + version +
                    " -cipher 'DEFAULT:@SECLEVEL=0' 2>&1");
  };
  const auto [tls12, tls12_output] = handshake("-tls1_2");
  EXPECT_EQ(tls12, 0) << tls12_output;
  const auto [tls11, tls11_output] = handshake("-tls1_1");
  EXPECT_NE(tls11, 0) << tls11_output;

  std::lock_guard lock(mutex_);
  EXPECT_EQ(stored_.size(), 1u);
}

TEST_F(IngestTlsTest, AMissingOrInvalidFileStopsTheStartNamingIt) {
  config_.tls_cert_file = (dir_ / "absent.pem").string();
  const Status missing = Make()->Start();
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("telemetry.tls_cert_file " + config_.tls_cert_file), std::string::npos)
      << missing.message();

  config_.tls_cert_file = cert_;
  const std::string not_pem = (dir_ / "not.pem").string();
  std::ofstream(not_pem) << "hello";
  config_.tls_key_file = not_pem;
  const Status invalid = Make()->Start();
  EXPECT_EQ(invalid.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(invalid.message().find("telemetry.tls_key_file"), std::string::npos) << invalid.message();

  // PEM, but the certificate where the key should be: libmicrohttpd refuses it.
  config_.tls_key_file = cert_;
  auto server = Make();
  const Status refused = server->Start();
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument) << refused.ToString();
  EXPECT_NE(refused.message().find("TLS"), std::string::npos) << refused.message();
  EXPECT_EQ(server->port(), 0);
}

}  // namespace
}  // namespace pwrcell::runtime::http
