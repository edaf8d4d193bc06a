// The Lambda runtime API, as a custom runtime speaks it (version 2018-06-01,
// https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), over the project's libcurl
// HttpClient:
//   GET  /2018-06-01/runtime/invocation/next              -> the next event (blocks)
//   POST /2018-06-01/runtime/invocation/<id>/response     <- the handler's answer
//   POST /2018-06-01/runtime/invocation/<id>/error        <- {"errorMessage", "errorType", "stackTrace"}
//   POST /2018-06-01/runtime/init/error                   <- the same, when initialisation failed
// Errors carry the header Lambda-Runtime-Function-Error-Type (the errorType).
// Thread-compatible: one loop calls it.
#pragma once

#include <chrono>
#include <string>

#include "adapters/http/http_client.h"
#include "common/status.h"
#include "common/time.h"

namespace pwrcell::runtime::lambda {

struct Invocation {
  std::string request_id;                          // Lambda-Runtime-Aws-Request-Id
  std::string event;                               // the body
  std::chrono::system_clock::time_point deadline;  // Lambda-Runtime-Deadline-Ms
  std::string function_arn;                        // Lambda-Runtime-Invoked-Function-Arn
  std::string trace_id;                            // Lambda-Runtime-Trace-Id ("" when absent)
};

// What a failed invocation (or initialisation) reports. `type` is a short category
// ("Runtime.InvalidEvent", "Handler.Unavailable", ...), `message` says what went wrong; neither
// may hold a secret.
struct LambdaError {
  std::string type;
  std::string message;
};

// {"errorMessage": message, "errorType": type, "stackTrace": []}.
std::string ErrorJson(const LambdaError& error);

class RuntimeApi {
 public:
  // `endpoint` is AWS_LAMBDA_RUNTIME_API ("127.0.0.1:9001"). `http` must outlive this object.
  RuntimeApi(std::string endpoint, const adapters::HttpClient& http);

  // Waits for the next invocation (no timeout: the environment may be frozen in between).
  // Errors: kUnavailable when the runtime API cannot be reached; kInternal for an answer that is
  // not 200 or lacks the request id or deadline header.
  Result<Invocation> Next() const;
  // Errors: kUnavailable / kInternal as above (a 4xx answer: the message names it, e.g. 413 for a
  // response above Lambda's 6 MB).
  Status Respond(const std::string& request_id, const std::string& body) const;
  Status ReportError(const std::string& request_id, const LambdaError& error) const;
  Status ReportInitError(const LambdaError& error) const;

 private:
  Status Post(const std::string& path, const std::string& body, const std::string& error_type) const;

  std::string base_;  // "http://<endpoint>/2018-06-01/runtime"
  const adapters::HttpClient& http_;
};

}  // namespace pwrcell::runtime::lambda
