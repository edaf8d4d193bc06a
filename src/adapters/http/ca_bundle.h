// The certificate authorities libcurl verifies HTTPS servers with (Concerto, CES, AWS).
//
// libcurl's default CA bundle is a path compiled in by the system that built it: Debian's is
// /etc/ssl/certs/ca-certificates.crt. A binary built on Debian with libcurl linked in and run on
// another distribution (the Lambda package runs on Amazon Linux 2023, whose bundle is
// /etc/pki/tls/certs/ca-bundle.crt: docs/PACKAGING.md) finds no file there, and libcurl then
// fails every HTTPS request ("error setting certificate file"). HttpClient gives libcurl the
// bundle chosen here instead.
#pragma once

#include <functional>
#include <string>

#include "common/status.h"

namespace pwrcell::adapters {

// The bundle to use: `ssl_cert_file` (OpenSSL's SSL_CERT_FILE variable) when set and non-empty,
// whether or not it exists (the operator chose it; libcurl reports it if it is missing); else
// `compiled_default` (libcurl's) when it exists; else the first of the distributions' usual
// bundles that exists (Fedora / Amazon Linux / RHEL, Debian / Ubuntu, SUSE, Alpine); else ""
// (leave libcurl's default, which then reports the error). Pure: `exists` is the file test.
std::string ChooseCaBundle(const char* ssl_cert_file, const char* compiled_default,
                           const std::function<bool(const std::string&)>& exists);

// A configured CA file (`key` names its setting, "concerto.ca_file"): it must be a readable file
// holding a PEM certificate, checked once at start so that a typo is not found as a TLS failure
// of every request. Errors: kNotFound (no such file), kPermissionDenied, kInvalidArgument (not a
// regular file, or no "-----BEGIN CERTIFICATE-----"); each names the key and the path.
Status CheckCaFile(const std::string& key, const std::string& path);

// ChooseCaBundle for this process (SSL_CERT_FILE, libcurl's compiled-in bundle, the filesystem),
// decided once. Thread-safe.
const std::string& SystemCaBundle();

}  // namespace pwrcell::adapters
