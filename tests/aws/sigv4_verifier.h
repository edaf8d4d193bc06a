// An independent AWS Signature Version 4 verifier for the tests: it recomputes the signature of a
// received request from the AWS documentation's algorithm (canonical request -> string to sign ->
// HMAC chain; https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) with the
// secret it knows, and says what AWS would answer. It shares no code with libcurl's signer (the
// one under test), and sigv4_vectors_test.cc checks it against the public test suite's canonical
// requests, strings to sign and signatures before it is trusted with anything else.
//
// What it implements is what AWS's JSON-protocol services check for header-based signing:
//   - SignedHeaders lists lowercase names in sorted order and includes host; each of them must be
//     in the request ("'<name>' is named as a SignedHeader, but it does not exist in the HTTP
//     request", as AWS answers with IncompleteSignatureException); a repeated header's values are
//     joined with ',' in order, values are trimmed and runs of blanks (folded lines too) become one
//     space;
//   - the canonical URI: dot segments and repeated slashes removed when `normalize_path` (every
//     service but S3), then every byte but unreserved characters and '/' percent-encoded (so a '%'
//     already on the wire is encoded again, as AWS does for non-S3 services);
//   - the canonical query: names and values decoded, re-encoded, sorted by name then value;
//   - the payload hash: x-amz-content-sha256 when present, else SHA-256 of the body;
//   - the credential scope must name the key's region and service and the X-Amz-Date's day.
// Not implemented (no test needs them): query-string (presigned) signing, SigV4a, clock skew.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "capture_server.h"

namespace pwrcell::aws_test {

inline std::string Hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0x0F]);
  }
  return out;
}

inline std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return Hex(digest, sizeof(digest));
}

inline std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

// The key a verifier knows: AWS's side of one access key.
struct SigV4Key {
  std::string access_key_id;
  std::string secret_access_key;
  std::string region;
  std::string service;
};

// What the verifier concluded, and the intermediate texts (filled as far as it got).
struct SigV4Verdict {
  bool ok = false;
  std::string error_code;  // AWS's code when !ok: InvalidSignatureException, IncompleteSignatureException,
                           // UnrecognizedClientException, MissingAuthenticationTokenException
  std::string message;     // AWS's message for it
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // the one the verifier computed
};

namespace sigv4_detail {

inline bool Unreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~';
}

inline std::string Encode(std::string_view text, bool keep_slash) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (Unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0x0F]);
    }
  }
  return out;
}

inline std::string Decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) != 0 &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2])) != 0) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// RFC 3986 dot-segment removal plus collapsing of empty segments ("//example//" -> "/example/").
inline std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> segments;
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    start = end + 1;
  }
  if (segments.empty()) return "/";
  std::string out;
  for (const auto segment : segments) out += "/" + std::string(segment);
  if (path.back() == '/') out += "/";
  return out;
}

inline std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  std::size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    std::size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(start, end - start);
    if (!pair.empty()) {
      const std::size_t equals = pair.find('=');
      const std::string_view name = pair.substr(0, equals);
      const std::string_view value = equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
      pairs.emplace_back(Encode(Decode(name), false), Encode(Decode(value), false));
    }
    start = end + 1;
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [name, value] : pairs) out += (out.empty() ? "" : "&") + name + "=" + value;
  return out;
}

// Trims, and turns every run of blanks (spaces, tabs, the line breaks of a folded value) into one
// space.
inline std::string CanonicalValue(std::string_view value) {
  std::string out;
  bool blank = false;
  for (const char c : value) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      blank = true;
      continue;
    }
    if (blank && !out.empty()) out.push_back(' ');
    blank = false;
    out.push_back(c);
  }
  return out;
}

// "Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=a;b, Signature=hex"
inline std::string AuthorizationPart(std::string_view authorization, std::string_view key) {
  const std::size_t at = authorization.find(std::string(key) + "=");
  if (at == std::string_view::npos) return {};
  const std::size_t from = at + key.size() + 1;
  std::size_t end = authorization.find(',', from);
  if (end == std::string_view::npos) end = authorization.size();
  return std::string(authorization.substr(from, end - from));
}

inline std::vector<std::string> Split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

}  // namespace sigv4_detail

// Verifies the Authorization header of `request` against `key`, as AWS would.
inline SigV4Verdict VerifySigV4(const CapturedRequest& request, const SigV4Key& key, bool normalize_path = true) {
  using namespace sigv4_detail;
  SigV4Verdict verdict;
  auto refuse = [&verdict](std::string code, std::string message) {
    verdict.error_code = std::move(code);
    verdict.message = std::move(message);
    return verdict;
  };
  const auto authorization = request.Header("Authorization");
  if (!authorization) return refuse("MissingAuthenticationTokenException", "Missing Authentication Token");
  if (authorization->rfind("AWS4-HMAC-SHA256 ", 0) != 0) {
    return refuse("IncompleteSignatureException", "Unsupported AWS 'algorithm': " + authorization->substr(0, 20));
  }
  const std::vector<std::string> scope = Split(AuthorizationPart(*authorization, "Credential"), '/');
  const std::string signed_list = AuthorizationPart(*authorization, "SignedHeaders");
  const std::string claimed = AuthorizationPart(*authorization, "Signature");
  if (scope.size() != 5 || signed_list.empty() || claimed.empty()) {
    return refuse("IncompleteSignatureException",
                  "Authorization header requires 'Credential', 'SignedHeaders' and "
                  "'Signature' parameters.");
  }
  if (scope[0] != key.access_key_id) {
    return refuse("UnrecognizedClientException", "The security token included in the request is invalid.");
  }
  const auto amz_date = request.Header("X-Amz-Date");
  if (!amz_date) return refuse("IncompleteSignatureException", "Authorization header requires existence of X-Amz-Date");
  if (scope[1] != amz_date->substr(0, 8) || scope[2] != key.region || scope[3] != key.service ||
      scope[4] != "aws4_request") {
    return refuse("InvalidSignatureException",
                  "Credential should be scoped to a valid region and service, and to "
                  "the day of X-Amz-Date.");
  }

  const std::vector<std::string> signed_headers = Split(signed_list, ';');
  if (!std::is_sorted(signed_headers.begin(), signed_headers.end()) ||
      std::find(signed_headers.begin(), signed_headers.end(), "host") == signed_headers.end()) {
    return refuse("InvalidSignatureException", "SignedHeaders must be sorted and include host: " + signed_list);
  }
  std::string canonical_headers;
  for (const std::string& name : signed_headers) {
    if (name != AsciiLower(name)) return refuse("InvalidSignatureException", "SignedHeaders must be lowercase");
    const std::vector<std::string> values = request.Values(name);
    if (values.empty()) {
      return refuse("IncompleteSignatureException",
                    "'" + name + "' is named as a SignedHeader, but it does not exist in the HTTP request.");
    }
    std::string joined;
    for (const std::string& value : values) joined += (joined.empty() ? "" : ",") + CanonicalValue(value);
    canonical_headers += name + ":" + joined + "\n";
  }

  const std::size_t question = request.target.find('?');
  const std::string_view path = std::string_view(request.target).substr(0, question);
  const std::string_view query =
      question == std::string::npos ? std::string_view() : std::string_view(request.target).substr(question + 1);
  const std::string canonical_uri =
      Encode(normalize_path ? NormalizePath(path) : std::string(path.empty() ? "/" : path), true);
  const auto content_sha = request.Header("x-amz-content-sha256");
  const std::string payload_hash = content_sha ? *content_sha : Sha256Hex(request.body);

  verdict.canonical_request = request.method + "\n" + canonical_uri + "\n" + CanonicalQuery(query) + "\n" +
                              canonical_headers + "\n" + signed_list + "\n" + payload_hash;
  const std::string credential_scope = scope[1] + "/" + scope[2] + "/" + scope[3] + "/aws4_request";
  verdict.string_to_sign =
      "AWS4-HMAC-SHA256\n" + *amz_date + "\n" + credential_scope + "\n" + Sha256Hex(verdict.canonical_request);
  const std::string date_key = HmacSha256("AWS4" + key.secret_access_key, scope[1]);
  const std::string region_key = HmacSha256(date_key, scope[2]);
  const std::string service_key = HmacSha256(region_key, scope[3]);
  const std::string signing_key = HmacSha256(service_key, "aws4_request");
  const std::string signature = HmacSha256(signing_key, verdict.string_to_sign);
  verdict.signature = Hex(reinterpret_cast<const unsigned char*>(signature.data()), signature.size());
  if (verdict.signature != claimed) {
    return refuse("InvalidSignatureException",
                  "The request signature we calculated does not match the signature you provided. Check your AWS "
                  "Secret Access Key and signing method. Consult the service documentation for details.");
  }
  verdict.ok = true;
  return verdict;
}

}  // namespace pwrcell::aws_test
