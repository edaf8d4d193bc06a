// The one table from how an HTTP exchange ended (libcurl's result code, then the HTTP status) to a
// StatusCode and the `outcome` label of the request metrics. HttpClient::Send and the retrying
// caller both read it; no other code maps an HTTP status or a curl error (CONVENTIONS.md "Errors":
// vendor errors are translated once, at the adapter edge).
//
// The rows (first match wins; the table itself is in status_table.cc, its test in
// tests/integration/http_utils_test.cc):
//
//   curl result                              HTTP status   StatusCode            outcome
//   CURLE_OPERATION_TIMEDOUT                 -             kDeadlineExceeded     timeout
//   CURLE_URL_MALFORMAT, _UNSUPPORTED_PROTOCOL,
//     _BAD_FUNCTION_ARGUMENT (no usable request)  -        kInvalidArgument      transport_error
//   any other failure (refused, DNS, TLS, reset,
//     body too large, out of memory)         -             kUnavailable          transport_error
//   CURLE_OK                                 200-299       kOk                   ok
//                                            401           kUnauthenticated      unauthorized
//                                            403           kPermissionDenied     http_4xx
//                                            404           kNotFound             http_4xx
//                                            405           kFailedPrecondition   http_4xx  (wrong URL: configuration)
//                                            408           kDeadlineExceeded     http_4xx
//                                            409           kAlreadyExists        http_4xx
//                                            429           kResourceExhausted    rate_limited
//                                            400-499 other kInvalidArgument      http_4xx
//                                            500-999       kUnavailable          http_5xx
//                                            1xx, 3xx      kFailedPrecondition   http_4xx  (redirects are not
//                                                          followed: the root URL is wrong; counted with 4xx)
//
// Retryable (IsRetryable in common/status.h) are exactly the timeout, transport, 408, 429 and 5xx
// rows; nothing maps to kAborted. A service client may refine a row from the answer's body (the
// Concerto client reads GraphQL error codes) but starts from this one.
#pragma once

#include <string_view>

#include "common/status.h"

namespace pwrcell::adapters {

struct ExchangeClass {
  StatusCode code = StatusCode::kOk;
  std::string_view outcome;  // a string literal: the metric label

  bool operator==(const ExchangeClass&) const = default;
};

// `curl_code` is libcurl's CURLcode (0 = CURLE_OK: an answer arrived and `http_status` is read);
// `http_status` is ignored otherwise.
ExchangeClass ClassifyExchange(int curl_code, long http_status);  // NOLINT(google-runtime-int): curl's type

}  // namespace pwrcell::adapters
