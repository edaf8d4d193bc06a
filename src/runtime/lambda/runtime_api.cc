#include "runtime/lambda/runtime_api.h"

#include <charconv>
#include <cstdint>
#include <utility>

#include <nlohmann/json.hpp>

namespace pwrcell::runtime::lambda {
namespace {

// The /next call waits while the environment is idle or frozen; a long limit instead of none
// (HttpClient needs one). A week is longer than any execution environment lives.
constexpr Duration kNextTimeout = std::chrono::hours(24 * 7);
// Responses and errors go to a local endpoint that answers at once.
constexpr Duration kPostTimeout = std::chrono::seconds(30);

}  // namespace

std::string ErrorJson(const LambdaError& error) {
  return nlohmann::json{
      {"errorMessage", error.message}, {"errorType", error.type}, {"stackTrace", nlohmann::json::array()}}
      .dump();
}

RuntimeApi::RuntimeApi(std::string endpoint, const adapters::HttpClient& http)
    : base_("http://" + std::move(endpoint) + "/2018-06-01/runtime"), http_(http) {}

Result<Invocation> RuntimeApi::Next() const {
  auto response = http_.Get(base_ + "/invocation/next", {}, kNextTimeout);
  if (!response.ok()) return UnavailableError("runtime API: " + response.status().message());
  if (response->status != 200) {
    return InternalError("runtime API: /invocation/next answered " + std::to_string(response->status));
  }
  Invocation invocation;
  invocation.request_id = response->Header("Lambda-Runtime-Aws-Request-Id").value_or("");
  if (invocation.request_id.empty()) {
    return InternalError("runtime API: /invocation/next gave no Lambda-Runtime-Aws-Request-Id");
  }
  const std::string deadline = response->Header("Lambda-Runtime-Deadline-Ms").value_or("");
  std::int64_t deadline_ms = 0;
  const auto [end, error] = std::from_chars(deadline.data(), deadline.data() + deadline.size(), deadline_ms);
  if (deadline.empty() || error != std::errc() || end != deadline.data() + deadline.size()) {
    return InternalError("runtime API: /invocation/next gave no valid Lambda-Runtime-Deadline-Ms");
  }
  invocation.deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(deadline_ms));
  invocation.function_arn = response->Header("Lambda-Runtime-Invoked-Function-Arn").value_or("");
  invocation.trace_id = response->Header("Lambda-Runtime-Trace-Id").value_or("");
  invocation.event = std::move(response->body);
  return invocation;
}

Status RuntimeApi::Post(const std::string& path, const std::string& body, const std::string& error_type) const {
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Type", "application/json"}};
  if (!error_type.empty()) headers.emplace_back("Lambda-Runtime-Function-Error-Type", error_type);
  auto response = http_.Post(base_ + path, std::move(headers), body, kPostTimeout);
  if (!response.ok()) return UnavailableError("runtime API: " + response.status().message());
  if (response->status != 202 && response->status != 200) {
    return InternalError("runtime API: " + path + " answered " + std::to_string(response->status) + ": " +
                         response->body.substr(0, 200));
  }
  return Status::Ok();
}

Status RuntimeApi::Respond(const std::string& request_id, const std::string& body) const {
  return Post("/invocation/" + request_id + "/response", body, "");
}

Status RuntimeApi::ReportError(const std::string& request_id, const LambdaError& error) const {
  return Post("/invocation/" + request_id + "/error", ErrorJson(error), error.type);
}

Status RuntimeApi::ReportInitError(const LambdaError& error) const {
  return Post("/init/error", ErrorJson(error), error.type);
}

}  // namespace pwrcell::runtime::lambda
