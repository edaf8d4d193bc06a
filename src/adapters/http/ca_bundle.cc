#include "adapters/http/ca_bundle.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

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

Status CheckCaFile(const std::string& key, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int error = errno;
    const std::string message = key + " " + path + ": " + std::strerror(error);
    if (error == ENOENT || error == ENOTDIR) return NotFoundError(message);
    if (error == EACCES) return PermissionDeniedError(message);
    return InvalidArgumentError(message);
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(key + " " + path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return PermissionDeniedError(key + " " + path + ": cannot be read");
  constexpr std::size_t kMaxBytes = 16 * 1024 * 1024;  // a system bundle is about 200 KiB
  std::string text;
  text.resize(std::min<std::size_t>(static_cast<std::size_t>(st.st_size), kMaxBytes));
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return InvalidArgumentError(key + " " + path + ": no PEM certificate in it (-----BEGIN CERTIFICATE-----)");
  }
  return Status::Ok();
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
