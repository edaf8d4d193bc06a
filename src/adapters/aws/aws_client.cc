#include "adapters/aws/aws_client.h"

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <utility>

#include "adapters/http/status_table.h"

namespace pwrcell::adapters::aws {
namespace {

struct ErrorRow {
  std::string_view code;
  StatusCode status;
};

// The named rows of THE table (aws_client.h); the HTTP-status fallbacks are in AwsErrorStatus.
constexpr std::array<ErrorRow, 36> kErrorTable{{
    {"ThrottlingException", StatusCode::kResourceExhausted},
    {"Throttling", StatusCode::kResourceExhausted},
    {"ThrottledException", StatusCode::kResourceExhausted},
    {"TooManyRequestsException", StatusCode::kResourceExhausted},
    {"ProvisionedThroughputExceededException", StatusCode::kResourceExhausted},
    {"RequestLimitExceeded", StatusCode::kResourceExhausted},
    {"LimitExceededException", StatusCode::kResourceExhausted},
    {"KMSThrottlingException", StatusCode::kResourceExhausted},
    {"RequestThrottled", StatusCode::kResourceExhausted},
    {"SlowDown", StatusCode::kResourceExhausted},
    {"ServiceUnavailable", StatusCode::kUnavailable},
    {"InternalFailure", StatusCode::kUnavailable},
    {"InternalServerError", StatusCode::kUnavailable},
    {"InternalError", StatusCode::kUnavailable},
    {"InternalServiceError", StatusCode::kUnavailable},
    {"RequestTimeout", StatusCode::kUnavailable},
    {"ConditionalCheckFailedException", StatusCode::kAborted},
    {"TransactionCanceledException", StatusCode::kAborted},
    {"TransactionConflictException", StatusCode::kAborted},
    {"ResourceNotFoundException", StatusCode::kNotFound},
    {"QueueDoesNotExist", StatusCode::kNotFound},
    {"AWS.SimpleQueueService.NonExistentQueue", StatusCode::kNotFound},
    {"ResourceInUseException", StatusCode::kAlreadyExists},
    {"ResourceExistsException", StatusCode::kAlreadyExists},
    {"QueueAlreadyExists", StatusCode::kAlreadyExists},
    {"UnrecognizedClientException", StatusCode::kUnauthenticated},
    {"InvalidClientTokenId", StatusCode::kUnauthenticated},
    {"InvalidSignatureException", StatusCode::kUnauthenticated},
    {"SignatureDoesNotMatch", StatusCode::kUnauthenticated},
    {"IncompleteSignature", StatusCode::kUnauthenticated},
    {"MissingAuthenticationToken", StatusCode::kUnauthenticated},
    {"ExpiredToken", StatusCode::kUnauthenticated},
    {"ExpiredTokenException", StatusCode::kUnauthenticated},
    {"AccessDeniedException", StatusCode::kPermissionDenied},
    {"AccessDenied", StatusCode::kPermissionDenied},
    {"ReceiptHandleIsInvalid", StatusCode::kInvalidArgument},
}};

// "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException" -> the part after '#';
// "AWS.SimpleQueueService.NonExistentQueue;Sender" -> the part before ';' (SQS's query-compatible
// codes in the x-amzn-query-error header look like this).
std::string ShortCode(std::string_view type) {
  if (const auto hash = type.rfind('#'); hash != std::string_view::npos) type = type.substr(hash + 1);
  if (const auto colon = type.find(':'); colon != std::string_view::npos) type = type.substr(0, colon);
  if (const auto semi = type.find(';'); semi != std::string_view::npos) type = type.substr(0, semi);
  return std::string(type);
}

// The text of the first <tag>...</tag> of an XML document, or "".
std::string XmlElement(std::string_view xml, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const auto start = xml.find(open);
  if (start == std::string_view::npos) return {};
  const auto end = xml.find("</" + std::string(tag) + ">", start + open.size());
  if (end == std::string_view::npos) return {};
  return std::string(xml.substr(start + open.size(), end - start - open.size()));
}

std::string_view Outcome(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kResourceExhausted:
      return "throttled";
    case StatusCode::kUnavailable:
      return "server_error";
    case StatusCode::kAborted:
      return "condition_failed";
    default:
      return "client_error";
  }
}

// Reads the AWS error of a non-2xx answer: the error type from the body's "__type" (or "code"),
// else from the X-Amzn-ErrorType header; the message from "message" / "Message".
AwsError ReadError(const HttpResponse& response) {
  AwsError error;
  error.http_status = response.status;
  if (auto id = response.Header("x-amzn-requestid")) {
    error.request_id = *id;
  } else if (auto amz_id = response.Header("x-amz-request-id")) {
    error.request_id = *amz_id;
  }
  const auto body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object()) {
    for (const char* key : {"__type", "code", "Code"}) {
      if (auto it = body.find(key); it != body.end() && it->is_string()) {
        error.code = ShortCode(it->get<std::string>());
        break;
      }
    }
    for (const char* key : {"message", "Message", "errorMessage"}) {
      if (auto it = body.find(key); it != body.end() && it->is_string()) {
        error.message = it->get<std::string>();
        break;
      }
    }
  }
  // An error in the query protocol's XML (<ErrorResponse><Error><Code>, <Message>, <RequestId>): what
  // moto answers for an authentication failure of any service (SignatureDoesNotMatch,
  // InvalidClientTokenId), where AWS's JSON services answer JSON.
  if (error.code.empty() && !body.is_object() && response.body.find("<Error>") != std::string::npos) {
    error.code = ShortCode(XmlElement(response.body, "Code"));
    error.message = XmlElement(response.body, "Message");
    if (error.request_id.empty()) error.request_id = XmlElement(response.body, "RequestId");
  }
  // SQS in its JSON protocol also names the query-protocol code ("AWS.SimpleQueueService.
  // NonExistentQueue;Sender"), which is the one its documentation lists.
  if (auto query = response.Header("x-amzn-query-error"); query.has_value() && !query->empty()) {
    error.code = ShortCode(*query);
  }
  if (error.code.empty()) {
    if (auto type = response.Header("x-amzn-errortype")) error.code = ShortCode(*type);
  }
  if (error.message.empty() && !body.is_object()) {
    error.message = response.body.substr(0, 200);
  }
  return error;
}

}  // namespace

Status AwsErrorStatus(const AwsError& error, std::string_view operation) {
  StatusCode code = StatusCode::kInvalidArgument;
  bool named = false;
  for (const auto& row : kErrorTable) {
    if (row.code == error.code) {
      code = row.status;
      named = true;
      break;
    }
  }
  if (!named) {
    if (error.http_status >= 500) {
      code = StatusCode::kUnavailable;
    } else if (error.http_status == 401) {
      code = StatusCode::kUnauthenticated;
    } else if (error.http_status == 403) {
      code = StatusCode::kPermissionDenied;
    } else if (error.http_status == 429) {
      code = StatusCode::kResourceExhausted;
    }
  }
  std::string message = std::string(operation) + ": " + (error.code.empty() ? "error" : error.code) + " (HTTP " +
                        std::to_string(error.http_status) +
                        (error.request_id.empty() ? std::string() : ", request id " + error.request_id) + ")";
  if (!error.message.empty()) message += ": " + error.message;
  return {code, std::move(message)};
}

AwsClientMetrics::AwsClientMetrics(Metrics* registry)
    : requests(registry, "pwrcell_aws_requests_total", "AWS API attempts by service and outcome",
               {"service", "outcome"}),
      retries(registry, "pwrcell_aws_retries_total", "AWS API attempts after the first of a call", {"service"}) {}

Result<AwsOptions> AwsOptions::FromEnvironment(const std::function<const char*(const char*)>& getenv_fn) {
  const auto get = [&](const char* name) -> std::string {
    const char* value = getenv_fn ? getenv_fn(name) : std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
    return value == nullptr ? std::string() : std::string(value);
  };
  AwsOptions options;
  options.credentials.access_key_id = get("AWS_ACCESS_KEY_ID");
  options.credentials.secret_access_key = get("AWS_SECRET_ACCESS_KEY");
  options.credentials.session_token = get("AWS_SESSION_TOKEN");
  options.region = get("AWS_REGION");
  if (options.region.empty()) options.region = get("AWS_DEFAULT_REGION");
  if (options.credentials.access_key_id.empty()) {
    return InvalidArgumentError("AWS credentials: AWS_ACCESS_KEY_ID is not set");
  }
  if (options.credentials.secret_access_key.empty()) {
    return InvalidArgumentError("AWS credentials: AWS_SECRET_ACCESS_KEY is not set");
  }
  if (options.region.empty())
    return InvalidArgumentError("AWS region: neither AWS_REGION nor AWS_DEFAULT_REGION is set");
  const std::string all = get("AWS_ENDPOINT_URL");
  for (const AwsService* service : {&kDynamoDb, &kSqs, &kSecretsManager, &kKinesis}) {
    const std::string variable = "AWS_ENDPOINT_URL_" + std::string(service->env_suffix);
    std::string url = get(variable.c_str());
    std::string_view from = variable;
    if (url.empty()) {
      url = all;
      from = "AWS_ENDPOINT_URL";
    }
    if (url.empty()) continue;
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      return InvalidArgumentError(std::string(from) + " is not an http:// or https:// URL");
    }
    options.endpoints[std::string(service->signing_name)] = TrimTrailingSlashes(url);
  }
  return options;
}

std::string AwsOptions::Endpoint(const AwsService& service) const {
  if (auto it = endpoints.find(service.signing_name); it != endpoints.end()) return it->second;
  return "https://" + std::string(service.signing_name) + "." + region + ".amazonaws.com";
}

AwsClient::AwsClient(AwsOptions options, Metrics* metrics)
    : options_(std::move(options)), backoff_(options_.backoff), metrics_(metrics) {
  if (options_.max_attempts < 1) options_.max_attempts = 1;
}

Result<nlohmann::json> AwsClient::Call(const AwsService& service, std::string_view operation,
                                       const nlohmann::json& request, AwsError* error) const {
  return CallText(service, operation, request.dump(), error);
}

Result<nlohmann::json> AwsClient::CallText(const AwsService& service, std::string_view operation,
                                           const std::string& body, AwsError* error) const {
  HttpRequest request;
  request.method = HttpMethod::kPost;
  request.url = options_.Endpoint(service) + "/";
  request.timeout = options_.timeout;
  request.headers = {
      {"Content-Type", "application/x-amz-json-" + std::string(service.json_version)},
      {"X-Amz-Target", std::string(service.target_prefix) + "." + std::string(operation)},
  };
  // SQS's JSON protocol answers with query-protocol error codes only when asked.
  if (service.signing_name == kSqs.signing_name) request.headers.emplace_back("x-amzn-query-mode", "true");
  if (!options_.credentials.session_token.empty()) {
    request.headers.emplace_back("X-Amz-Security-Token", options_.credentials.session_token);
  }
  request.body = body;
  request.sigv4 = AwsSigV4{options_.region, std::string(service.signing_name), options_.credentials.access_key_id,
                           options_.credentials.secret_access_key};
  const std::string service_name(service.signing_name);

  Status last;
  for (int attempt = 1;; ++attempt) {
    AwsError failure;
    std::optional<Duration> retry_after;
    auto response = http_.Send(request);
    if (!response.ok()) {
      last = response.status().WithContext(std::string(operation));
      metrics_.requests.Increment({service_name, "transport_error"});
    } else if (response->status >= 200 && response->status < 300) {
      metrics_.requests.Increment({service_name, "ok"});
      if (response->body.empty()) return nlohmann::json::object();
      auto parsed = nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded() || !parsed.is_object()) {
        return InternalError(std::string(operation) + ": the answer is not a JSON object");
      }
      return parsed;
    } else {
      failure = ReadError(*response);
      last = AwsErrorStatus(failure, operation);
      retry_after = response->RetryAfter(
          std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now()));
      metrics_.requests.Increment({service_name, std::string(Outcome(last.code()))});
    }
    if (error != nullptr) *error = failure;
    // kAborted (a failed condition) is retryable in general, but here it is an answer: the port
    // decides what it means.
    const bool retryable = last.IsRetryable() && last.code() != StatusCode::kAborted;
    if (!retryable || attempt >= options_.max_attempts || backoff_.TooLong(retry_after)) return last;
    metrics_.retries.Increment({service_name});
    const Duration delay = backoff_.Delay(attempt, retry_after);
    spdlog::debug("aws: {} {} failed ({}); attempt {} in {} ms", service_name, operation, last.ToString(), attempt + 1,
                  delay.count());
    backoff_.SleepFor(delay);
  }
}

}  // namespace pwrcell::adapters::aws
