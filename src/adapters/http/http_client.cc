#include "adapters/http/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <mutex>

#include "adapters/http/ca_bundle.h"
#include "adapters/http/status_table.h"
#include "common/url.h"

namespace pwrcell::adapters {
namespace {

std::string ToLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

// curl_global_init is not thread-safe in older libcurl versions: run it once, before any handle.
void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One easy handle per thread, reset before each request: requests of one thread reuse its
// connections, and no handle is ever shared between threads (curl forbids that).
class ThreadHandle {
 public:
  ThreadHandle() = default;
  ThreadHandle(const ThreadHandle&) = delete;
  ThreadHandle& operator=(const ThreadHandle&) = delete;
  ~ThreadHandle() {
    if (handle_ != nullptr) curl_easy_cleanup(handle_);
  }
  CURL* Acquire() {
    if (handle_ == nullptr) {
      handle_ = curl_easy_init();
    } else {
      curl_easy_reset(handle_);
    }
    return handle_;
  }

 private:
  CURL* handle_ = nullptr;
};

struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct Transfer {
  HttpResponse response;
  std::size_t max_body = 0;
  bool body_too_large = false;
};

std::size_t OnBody(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  if (transfer->response.body.size() + bytes > transfer->max_body) {
    transfer->body_too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  transfer->response.body.append(data, bytes);
  return bytes;
}

std::size_t OnHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  std::string_view line(data, bytes);
  if (line.starts_with("HTTP/")) {
    transfer->response.headers.clear();  // a new response (after 100 Continue): keep only the last
    return bytes;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return bytes;
  transfer->response.headers[ToLower(Trim(line.substr(0, colon)))] = std::string(Trim(line.substr(colon + 1)));
  return bytes;
}

// scheme://host[:port]/path without the query: enough to say where a failure happened.
// The URL for a message: without its query, and without the password it may carry.
std::string Where(const std::string& url) {
  const auto query = url.find('?');
  return RedactUrlCredentials(query == std::string::npos ? url : url.substr(0, query));
}

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  auto it = headers.find(ToLower(name));
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

std::optional<Duration> HttpResponse::RetryAfter(Timestamp now) const {
  auto value = Header("retry-after");
  if (!value) return std::nullopt;
  const std::string text(Trim(*value));
  if (text.empty()) return std::nullopt;
  if (std::isdigit(static_cast<unsigned char>(text.front()))) {
    char* end = nullptr;
    const double seconds = std::strtod(text.c_str(), &end);
    if (end == nullptr || *end != '\0' || !std::isfinite(seconds) || seconds < 0) return std::nullopt;
    return Duration(static_cast<std::int64_t>(std::llround(seconds * 1000)));
  }
  const std::time_t at = curl_getdate(text.c_str(), nullptr);
  if (at < 0) return std::nullopt;
  const Duration delay = Duration(static_cast<std::int64_t>(at) * 1000) - now.time_since_epoch();
  return std::max(delay, Duration(0));
}

HttpClient::HttpClient(HttpClientOptions options) : options_(std::move(options)) {
  GlobalInitOnce();
}

HttpExchange HttpClient::Exchange(const HttpRequest& request) const {
  HttpExchange exchange;
  auto fail = [&exchange](CURLcode code, std::string error) {
    exchange.curl_code = code;
    exchange.error = std::move(error);
    return std::move(exchange);
  };
  if (request.url.empty()) return fail(CURLE_URL_MALFORMAT, "HTTP request without a URL");
  if (request.timeout <= Duration(0)) return fail(CURLE_BAD_FUNCTION_ARGUMENT, "HTTP request timeout must be > 0");

  thread_local ThreadHandle thread_handle;
  CURL* curl = thread_handle.Acquire();
  if (curl == nullptr) return fail(CURLE_FAILED_INIT, "curl_easy_init failed");

  Slist headers;
  for (const auto& [name, value] : request.headers) {
    const std::string line = name + ": " + value;
    curl_slist* appended = curl_slist_append(headers.get(), line.c_str());
    if (appended == nullptr) return fail(CURLE_OUT_OF_MEMORY, "out of memory building HTTP headers");
    headers.release();
    headers.reset(appended);
  }
  // No "Expect: 100-continue" round trip for large bodies. An unsigned request removes the header
  // with an "Expect:" line. A signed one must not: libcurl before 8.3.0 signs every CURLOPT_HTTPHEADER
  // line, a removal line too, so SignedHeaders would name an "expect" header the request does not
  // carry, which services that check refuse (curl issue #11664: AppSync's IncompleteSignatureException;
  // moto's SignatureDoesNotMatch, tests/aws/sigv4_auth_test.cc).
  // A signed request lets libcurl add its own Expect to a body over 1 MiB (not signed: only given
  // headers are) and sends the body without waiting for "100 Continue" (timeout 0 below).
  if (!request.sigv4.has_value()) {
    if (curl_slist* appended = curl_slist_append(headers.get(), "Expect:"); appended != nullptr) {
      headers.release();
      headers.reset(appended);
    }
  }

  Transfer transfer;
  transfer.max_body = options_.max_response_bytes;
  char error_buffer[CURL_ERROR_SIZE] = {};
  const long timeout_ms = static_cast<long>(request.timeout.count());  // NOLINT(google-runtime-int)
  const long connect_ms =                                              // NOLINT(google-runtime-int)
      static_cast<long>(std::min(options_.connect_timeout, request.timeout).count());

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  // Verification is libcurl's default; set anyway, so that no build or handle reuse can turn it off.
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  // The configured CA file, else the system's: the build system's bundle may not exist where this
  // runs (ca_bundle.h).
  if (const std::string& ca_bundle = options_.ca_file.empty() ? SystemCaBundle() : options_.ca_file;
      !ca_bundle.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, ca_bundle.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  if (request.method == HttpMethod::kPost) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  } else {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }

  std::string sigv4_provider;
  if (request.sigv4.has_value()) {
    // "aws:amz:<region>:<service>": libcurl derives the credential scope from it.
    sigv4_provider = "aws:amz:" + request.sigv4->region + ":" + request.sigv4->service;
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4_provider.c_str());
    curl_easy_setopt(curl, CURLOPT_USERNAME, request.sigv4->access_key_id.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, request.sigv4->secret_access_key.c_str());
    curl_easy_setopt(curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
  }

  const CURLcode code = curl_easy_perform(curl);
  // The handle outlives this call: drop pointers to our stack, and the credentials, before
  // returning (the next request on this thread may go elsewhere).
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  if (request.sigv4.has_value()) {
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, nullptr);
    curl_easy_setopt(curl, CURLOPT_USERNAME, nullptr);
    curl_easy_setopt(curl, CURLOPT_PASSWORD, nullptr);
  }

  const std::string what = std::string(request.method == HttpMethod::kPost ? "POST" : "GET") + " " + Where(request.url);
  if (code != CURLE_OK) {
    if (transfer.body_too_large) {
      return fail(code, what + ": response larger than " + std::to_string(options_.max_response_bytes) + " bytes");
    }
    std::string detail = error_buffer[0] != '\0' ? std::string(error_buffer) : std::string(curl_easy_strerror(code));
    if (code == CURLE_OPERATION_TIMEDOUT) detail += " (timeout " + std::to_string(request.timeout.count()) + " ms)";
    if (code == CURLE_PEER_FAILED_VERIFICATION) {
      detail +=
          " (TLS certificate verification failed: the server's certificate is not signed by a trusted CA; "
          "configure its CA file with ca_file)";
    }
    if (code == CURLE_SSL_CACERT_BADFILE) {
      detail +=
          " (the CA file " + (options_.ca_file.empty() ? SystemCaBundle() : options_.ca_file) + " cannot be read)";
    }
    return fail(code, what + ": " + detail);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &transfer.response.status);
  exchange.response = std::move(transfer.response);
  return exchange;
}

Result<HttpResponse> HttpClient::Send(const HttpRequest& request) const {
  HttpExchange exchange = Exchange(request);
  if (!exchange.answered()) return Status(ClassifyExchange(exchange.curl_code, 0).code, std::move(exchange.error));
  return std::move(exchange.response);
}

Result<HttpResponse> HttpClient::Get(std::string url, std::vector<std::pair<std::string, std::string>> headers,
                                     Duration timeout) const {
  HttpRequest request;
  request.method = HttpMethod::kGet;
  request.url = std::move(url);
  request.headers = std::move(headers);
  request.timeout = timeout;
  return Send(request);
}

Result<HttpResponse> HttpClient::Post(std::string url, std::vector<std::pair<std::string, std::string>> headers,
                                      std::string body, Duration timeout) const {
  HttpRequest request;
  request.method = HttpMethod::kPost;
  request.url = std::move(url);
  request.headers = std::move(headers);
  request.body = std::move(body);
  request.timeout = timeout;
  return Send(request);
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (alnum || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0F]);
    }
  }
  return out;
}

std::string TrimTrailingSlashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace pwrcell::adapters
