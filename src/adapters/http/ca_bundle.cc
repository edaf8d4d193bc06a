#include "adapters/http/ca_bundle.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <array>
#include <cstdlib>

namespace pwrcell::adapters {

std::string ChooseCaBundle(const char* ssl_cert_file, const char* compiled_default,
                           const std::function<bool(const std::string&)>& exists) {
  if (ssl_cert_file != nullptr && *ssl_cert_file != '\0') return ssl_cert_file;
  if (compiled_default != nullptr && *compiled_default != '\0' && exists(compiled_default)) return compiled_default;
  static constexpr std::array<const char*, 4> kKnownBundles = {
      "/etc/pki/tls/certs/ca-bundle.crt",    // Fedora, Amazon Linux, RHEL
      "/etc/ssl/certs/ca-certificates.crt",  // Debian, Ubuntu
      "/etc/ssl/ca-bundle.pem",              // SUSE
      "/etc/ssl/cert.pem",                   // Alpine
  };
  for (const char* bundle : kKnownBundles) {
    if (exists(bundle)) return bundle;
  }
  return {};
}

const std::string& SystemCaBundle() {
  static const std::string bundle = [] {
    const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
    return ChooseCaBundle(std::getenv("SSL_CERT_FILE"),  // NOLINT(concurrency-mt-unsafe): read once
                          info != nullptr ? info->cainfo : nullptr, [](const std::string& path) {
                            struct stat st {};
                            return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
                          });
  }();
  return bundle;
}

}  // namespace pwrcell::adapters
