// A small HTTP client over libcurl: one request in, {status, headers, body} out.
//
// curl errors become a Status through the one table of adapters/http/status_table.h
// (CONVENTIONS.md "Errors": translate vendor errors once, at the adapter edge): a timeout is
// kDeadlineExceeded, a request curl cannot send (bad URL) kInvalidArgument, any other transport
// failure (refused connection, DNS, TLS, reset) kUnavailable. An HTTP status of any value is NOT
// an error here: the retrying caller (retrying_caller.h) classifies answers with the same table.
//
// Thread-safety: Send may be called from many threads at once. Each thread reuses its own curl
// easy handle (so connections are kept alive per thread); curl_global_init runs once per process.
// Redirects are not followed (a redirect must not carry an API key to another host).
// Header values are never logged here, so callers may put credentials in them.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pwrcell::adapters {

enum class HttpMethod { kGet, kPost };

// AWS Signature Version 4 signing of a request, done by libcurl (CURLOPT_AWS_SIGV4): it adds the
// Authorization and X-Amz-Date headers (an X-Amz-Date header given in `headers` is used as the
// signing time instead of the clock), signing the request's headers and the SHA-256 of its body.
// A session token is not signed in here: the caller adds X-Amz-Security-Token to `headers`.
struct AwsSigV4 {
  std::string region;   // "eu-west-1"
  std::string service;  // the signing name: "dynamodb", "sqs", "secretsmanager", "kinesis"
  std::string access_key_id;
  std::string secret_access_key;  // never logged, never in an error
};

struct HttpRequest {
  HttpMethod method = HttpMethod::kGet;
  std::string url;
  // Sent as given ("Content-Type", "application/json"). Names are case-insensitive on the wire.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // POST only
  // Whole-request limit (connect + send + wait + receive). Must be > 0.
  Duration timeout = std::chrono::seconds(30);
  // Signed with SigV4 when set (AWS APIs).
  std::optional<AwsSigV4> sigv4;
};

struct HttpResponse {
  long status = 0;  // NOLINT(google-runtime-int): curl's type for the response code
  // Response headers of the final response, names lower-cased; a repeated header keeps the last value.
  std::map<std::string, std::string> headers;
  std::string body;

  // The header's value (name matched case-insensitively), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
  // Retry-After as a delay: delta-seconds ("1", "2.5") or an HTTP-date relative to `now`.
  // nullopt when absent or unparseable; a date in the past is 0.
  std::optional<Duration> RetryAfter(Timestamp now) const;
};

// How one exchange ended, before anyone judged it: libcurl's result code and, when an answer
// arrived (curl_code == 0), the answer. ClassifyExchange(curl_code, response.status) judges it.
struct HttpExchange {
  int curl_code = 0;  // CURLcode
  // When curl_code != 0: what went wrong, naming the method and the URL without its query (never
  // header values).
  std::string error;
  HttpResponse response;

  bool answered() const { return curl_code == 0; }
};

struct HttpClientOptions {
  // Connect phase limit (capped by the request's timeout).
  Duration connect_timeout = std::chrono::seconds(10);
  // A larger response body fails the request with kUnavailable (protects memory).
  std::size_t max_response_bytes = 64 * 1024 * 1024;
  std::string user_agent = "pwrcell-adapter";
  // A PEM file of the certificate authorities HTTPS servers are verified with; "" = the system's
  // bundle (ca_bundle.h). Peer and host verification are always on: a server whose certificate
  // does not chain to these CAs fails the request (kUnavailable, "certificate verification failed").
  std::string ca_file;
};

class HttpClient {
 public:
  explicit HttpClient(HttpClientOptions options = {});

  // Performs the request and reports how it ended; never fails on its own. An empty URL is
  // CURLE_URL_MALFORMAT, a timeout <= 0 CURLE_BAD_FUNCTION_ARGUMENT.
  HttpExchange Exchange(const HttpRequest& request) const;

  // Exchange with a transport failure as its Status (status_table.h). Any HTTP status is a
  // successful Result. Errors: kDeadlineExceeded when the request timed out; kInvalidArgument for
  // an empty or malformed URL or a timeout <= 0; kUnavailable for any other transport failure (the
  // message names the curl error and the URL's scheme/host/path, never header values).
  Result<HttpResponse> Send(const HttpRequest& request) const;

  Result<HttpResponse> Get(std::string url, std::vector<std::pair<std::string, std::string>> headers,
                           Duration timeout) const;
  Result<HttpResponse> Post(std::string url, std::vector<std::pair<std::string, std::string>> headers, std::string body,
                            Duration timeout) const;

 private:
  HttpClientOptions options_;
};

// Percent-encodes everything but RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~), for one
// path segment or query value.
std::string UrlEncode(std::string_view text);

// A root URL without its trailing slashes ("http://h:8080/" -> "http://h:8080").
std::string TrimTrailingSlashes(std::string url);

}  // namespace pwrcell::adapters
