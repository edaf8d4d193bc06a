#include "adapters/http/ca_bundle.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace pwrcell::adapters {
namespace {

// A filesystem holding exactly `files`.
auto Holding(std::set<std::string> files) {
  return [files = std::move(files)](const std::string& path) { return files.count(path) > 0; };
}

TEST(CaBundleTest, SslCertFileWinsEvenWhenMissing) {
  EXPECT_EQ(ChooseCaBundle("/opt/ca.pem", "/etc/ssl/certs/ca-certificates.crt",
                           Holding({"/etc/ssl/certs/ca-certificates.crt"})),
            "/opt/ca.pem");
}

TEST(CaBundleTest, CompiledDefaultWhenItExists) {
  EXPECT_EQ(ChooseCaBundle(nullptr, "/etc/ssl/certs/ca-certificates.crt",
                           Holding({"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"})),
            "/etc/ssl/certs/ca-certificates.crt");
  EXPECT_EQ(ChooseCaBundle("", "/etc/ssl/certs/ca-certificates.crt", Holding({"/etc/ssl/certs/ca-certificates.crt"})),
            "/etc/ssl/certs/ca-certificates.crt");
}

// A Debian-built libcurl on Amazon Linux 2023 (the Lambda package).
TEST(CaBundleTest, AmazonLinuxBundleWhenTheCompiledOneIsMissing) {
  EXPECT_EQ(
      ChooseCaBundle(nullptr, "/etc/ssl/certs/ca-certificates.crt", Holding({"/etc/pki/tls/certs/ca-bundle.crt"})),
      "/etc/pki/tls/certs/ca-bundle.crt");
  EXPECT_EQ(ChooseCaBundle(nullptr, nullptr, Holding({"/etc/ssl/cert.pem"})), "/etc/ssl/cert.pem");
}

TEST(CaBundleTest, NothingFoundLeavesLibcurlsDefault) {
  EXPECT_EQ(ChooseCaBundle(nullptr, "/etc/ssl/certs/ca-certificates.crt", Holding({})), "");
}

}  // namespace
}  // namespace pwrcell::adapters
