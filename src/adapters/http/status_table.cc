#include "adapters/http/status_table.h"

#include <curl/curl.h>

#include <array>

namespace pwrcell::adapters {
namespace {

// A libcurl failure that never produced an answer.
struct CurlRow {
  CURLcode curl;
  ExchangeClass result;
};
constexpr std::array kCurlRows = {
    CurlRow{CURLE_OPERATION_TIMEDOUT, {StatusCode::kDeadlineExceeded, "timeout"}},
    // The request itself is unusable: sending it again cannot help.
    CurlRow{CURLE_URL_MALFORMAT, {StatusCode::kInvalidArgument, "transport_error"}},
    CurlRow{CURLE_UNSUPPORTED_PROTOCOL, {StatusCode::kInvalidArgument, "transport_error"}},
    CurlRow{CURLE_BAD_FUNCTION_ARGUMENT, {StatusCode::kInvalidArgument, "transport_error"}},
};
constexpr ExchangeClass kOtherCurlFailure{StatusCode::kUnavailable, "transport_error"};

// An answer, by HTTP status range [low, high].
struct HttpRow {
  long low;   // NOLINT(google-runtime-int)
  long high;  // NOLINT(google-runtime-int)
  ExchangeClass result;
};
constexpr std::array kHttpRows = {
    HttpRow{200, 299, {StatusCode::kOk, "ok"}},
    HttpRow{401, 401, {StatusCode::kUnauthenticated, "unauthorized"}},
    HttpRow{403, 403, {StatusCode::kPermissionDenied, "http_4xx"}},
    HttpRow{404, 404, {StatusCode::kNotFound, "http_4xx"}},
    HttpRow{405, 405, {StatusCode::kFailedPrecondition, "http_4xx"}},
    HttpRow{408, 408, {StatusCode::kDeadlineExceeded, "http_4xx"}},
    HttpRow{409, 409, {StatusCode::kAlreadyExists, "http_4xx"}},
    HttpRow{429, 429, {StatusCode::kResourceExhausted, "rate_limited"}},
    HttpRow{400, 499, {StatusCode::kInvalidArgument, "http_4xx"}},
    HttpRow{500, 999, {StatusCode::kUnavailable, "http_5xx"}},
};
// 1xx after the exchange, 3xx (redirects are not followed), anything outside the rows.
constexpr ExchangeClass kOtherAnswer{StatusCode::kFailedPrecondition, "http_4xx"};

}  // namespace

ExchangeClass ClassifyExchange(int curl_code, long http_status) {  // NOLINT(google-runtime-int)
  if (curl_code != CURLE_OK) {
    for (const CurlRow& row : kCurlRows) {
      if (row.curl == curl_code) return row.result;
    }
    return kOtherCurlFailure;
  }
  for (const HttpRow& row : kHttpRows) {
    if (http_status >= row.low && http_status <= row.high) return row.result;
  }
  return kOtherAnswer;
}

}  // namespace pwrcell::adapters
