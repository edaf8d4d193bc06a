#include "moto.h"

#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

namespace pwrcell::aws_test {
namespace {

std::string ReadEndpoint(const std::filesystem::path& dir) {
  std::ifstream in(dir / "endpoint");
  std::string endpoint;
  std::getline(in, endpoint);
  return endpoint;
}

// A server of this process's own, when not run under the CTest fixture.
struct OwnServer {
  std::string dir;
  std::string endpoint;
  std::string error;

  OwnServer() {
    std::string pattern = (std::filesystem::temp_directory_path() / "pwrcell-moto-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      error = "mkdtemp failed";
      return;
    }
    dir = pattern;
    const std::string command =
        "python3 " PWRCELL_SOURCE_DIR "/tests/aws/moto_fixture.py start '" + dir + "' >/dev/null";
    if (std::system(command.c_str()) != 0) {  // NOLINT(concurrency-mt-unsafe,cert-env33-c)
      error = "could not start moto_server (" + command + ")";
      return;
    }
    endpoint = ReadEndpoint(dir);
  }
  ~OwnServer() {
    if (dir.empty()) return;
    const std::string command = "python3 " PWRCELL_SOURCE_DIR "/tests/aws/moto_fixture.py stop '" + dir + "'";
    (void)std::system(command.c_str());  // NOLINT(concurrency-mt-unsafe,cert-env33-c)
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

}  // namespace

std::string MotoEndpoint() {
  static const std::string shared = [] {
    const char* dir = std::getenv("PWRCELL_MOTO_DIR");  // NOLINT(concurrency-mt-unsafe)
    return dir == nullptr ? std::string() : ReadEndpoint(dir);
  }();
  if (!shared.empty()) return shared;
  static OwnServer own;  // started on first use, stopped at exit
  if (own.endpoint.empty()) {
    ADD_FAILURE() << "no moto_server: " << own.error;
  }
  return own.endpoint;
}

adapters::aws::AwsOptions MotoOptions() {
  adapters::aws::AwsOptions options;
  options.region = "us-east-1";
  options.credentials = {"testing", "testing", ""};
  const std::string endpoint = MotoEndpoint();
  for (const auto* service :
       {&adapters::aws::kDynamoDb, &adapters::aws::kSqs, &adapters::aws::kSecretsManager, &adapters::aws::kKinesis}) {
    options.endpoints[std::string(service->signing_name)] = endpoint;
  }
  options.max_attempts = 3;
  options.timeout = std::chrono::seconds(30);
  return options;
}

std::string UniqueName(std::string_view prefix) {
  static std::atomic<int> counter{0};
  static const unsigned salt = std::random_device{}();
  std::ostringstream name;
  name << prefix.substr(0, 40) << '-' << ::getpid() << '-' << counter.fetch_add(1) << '-' << std::hex << salt;
  return name.str();
}

std::string InitialVersionToken(std::string_view id) {
  std::string token = "initial-version-of-" + std::string(id);
  if (token.size() < 32) token.append(32 - token.size(), '0');
  if (token.size() > 64) token.resize(64);
  return token;
}

}  // namespace pwrcell::aws_test
