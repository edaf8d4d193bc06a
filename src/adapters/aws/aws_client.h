// A small client for the AWS APIs the adapter uses, all spoken in their JSON protocols: DynamoDB,
// SQS (its JSON protocol), Secrets Manager and Kinesis. One call is a POST of a JSON document to
// the service's endpoint with `X-Amz-Target: <prefix>.<Operation>` and
// `Content-Type: application/x-amz-json-1.0|1.1`, signed with SigV4 by libcurl
// (CURLOPT_AWS_SIGV4, adapters/http/http_client.h), plus `X-Amz-Security-Token` when the
// credentials carry a session token.
//
// Errors: AWS's answers become a Status in one table (AwsErrorStatus below, the only place that
// reads an AWS error type); the message names the operation, the AWS error code, AWS's message and
// the request id, never a credential. Retryable failures (throttling, 5xx, transport failures,
// timeouts) are retried with backoff up to max_attempts; the rest return at once. No AWS type or
// JSON leaves the adapters that use this client: they translate to the ports' types.
//
// Thread-safe: Call may run on many threads at once (HttpClient keeps one curl handle per thread).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "adapters/http/backoff.h"
#include "adapters/http/http_client.h"
#include "common/metrics.h"
#include "common/status.h"
#include "common/time.h"

namespace pwrcell::adapters::aws {

// One AWS service in its JSON protocol.
struct AwsService {
  std::string_view signing_name;   // SigV4 service name and endpoint host prefix: "dynamodb"
  std::string_view target_prefix;  // X-Amz-Target is "<target_prefix>.<Operation>"
  std::string_view json_version;   // Content-Type is "application/x-amz-json-<json_version>"
  std::string_view env_suffix;     // AWS_ENDPOINT_URL_<env_suffix> overrides its endpoint
};
inline constexpr AwsService kDynamoDb{"dynamodb", "DynamoDB_20120810", "1.0", "DYNAMODB"};
inline constexpr AwsService kSqs{"sqs", "AmazonSQS", "1.0", "SQS"};
inline constexpr AwsService kSecretsManager{"secretsmanager", "secretsmanager", "1.1", "SECRETS_MANAGER"};
inline constexpr AwsService kKinesis{"kinesis", "Kinesis_20131202", "1.1", "KINESIS"};

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;  // never logged
  std::string session_token;      // empty for long-term keys; never logged
};

struct AwsOptions {
  std::string region;
  AwsCredentials credentials;
  // Endpoint per service signing name ("dynamodb" -> "http://127.0.0.1:5000"), for tests and
  // VPC endpoints; a service without one goes to https://<signing_name>.<region>.amazonaws.com.
  std::map<std::string, std::string, std::less<>> endpoints;
  // One HTTP exchange (connect + send + answer).
  Duration timeout = std::chrono::seconds(10);
  // Attempts of a call whose failure is retryable (throttling, 5xx, transport, timeout): >= 1.
  int max_attempts = 5;
  BackoffPolicy backoff{std::chrono::milliseconds(50), std::chrono::seconds(2), 2.0, 0.5, std::chrono::seconds(20)};

  // The standard environment of the AWS SDKs: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  // AWS_SESSION_TOKEN (optional), AWS_REGION (else AWS_DEFAULT_REGION), AWS_ENDPOINT_URL (every
  // service) and AWS_ENDPOINT_URL_<SERVICE> (DYNAMODB, SQS, SECRETS_MANAGER, KINESIS; wins over
  // AWS_ENDPOINT_URL). kInvalidArgument naming the missing variable when the keys or the region
  // are missing, or an endpoint is not an http(s) URL. `getenv` is injectable for tests.
  static Result<AwsOptions> FromEnvironment(const std::function<const char*(const char*)>& getenv = {});

  // The URL calls to `service` go to (no trailing slash).
  std::string Endpoint(const AwsService& service) const;
};

// How AWS refused a call (one attempt).
struct AwsError {
  long http_status = 0;    // NOLINT(google-runtime-int): curl's type; 0 when no answer came
  std::string code;        // the error type without its namespace: "ConditionalCheckFailedException"
  std::string message;     // AWS's message
  std::string request_id;  // x-amzn-RequestId (or x-amz-request-id)
};

// THE table from an AWS error to a Status (first match wins):
//   ThrottlingException, Throttling, ThrottledException, TooManyRequestsException,
//   ProvisionedThroughputExceededException, RequestLimitExceeded, LimitExceededException
//   (Kinesis), KMSThrottlingException, RequestThrottled, SlowDown     -> kResourceExhausted (retryable)
//   ServiceUnavailable, InternalFailure, InternalServerError, InternalError,
//   InternalServiceError, RequestTimeout, any 5xx                    -> kUnavailable (retryable)
//   ConditionalCheckFailedException, TransactionCanceledException,
//   TransactionConflictException                                     -> kAborted (the port decides)
//   ResourceNotFoundException, QueueDoesNotExist,
//   AWS.SimpleQueueService.NonExistentQueue                          -> kNotFound
//   ResourceInUseException, ResourceExistsException, QueueAlreadyExists -> kAlreadyExists
//   UnrecognizedClientException, InvalidClientTokenId,
//   InvalidSignatureException, SignatureDoesNotMatch,
//   IncompleteSignature, MissingAuthenticationToken, ExpiredToken,
//   ExpiredTokenException, any other 401                             -> kUnauthenticated (permanent)
//   AccessDeniedException, AccessDenied, any other 403               -> kPermissionDenied (permanent)
//   ReceiptHandleIsInvalid, InvalidParameterValue, ValidationException,
//   SerializationException, any other 4xx                            -> kInvalidArgument (permanent)
// The message: "<operation>: <code> (HTTP <status>, request id <id>): <message>".
Status AwsErrorStatus(const AwsError& error, std::string_view operation);

// pwrcell_aws_requests_total{service,outcome}: every attempt, outcome "ok", "throttled",
// "server_error", "transport_error", "condition_failed" (a conditional write or transaction
// refused: an answer the port expects, e.g. a lease held by another process), "client_error";
// pwrcell_aws_retries_total{service}: the attempts after the first.
struct AwsClientMetrics {
  explicit AwsClientMetrics(Metrics* registry);
  Counter<2> requests;
  Counter<1> retries;
};

class AwsClient {
 public:
  explicit AwsClient(AwsOptions options, Metrics* metrics = nullptr);

  // Calls `operation` of `service` with `request` (a JSON object) and returns the answer's JSON
  // object ({} for an empty answer). Retries what is retryable with backoff, at most
  // options().max_attempts attempts. On failure the Status comes from AwsErrorStatus (or, for a
  // transport failure, from the HTTP client's table); when `error` is given it receives the AWS
  // error of the last attempt (code empty when no AWS answer came), so that an adapter can tell
  // ConditionalCheckFailedException from TransactionCanceledException.
  Result<nlohmann::json> Call(const AwsService& service, std::string_view operation, const nlohmann::json& request,
                              AwsError* error = nullptr) const;
  // The same with the request already serialised (hot paths build their JSON text directly).
  Result<nlohmann::json> CallText(const AwsService& service, std::string_view operation, const std::string& body,
                                  AwsError* error = nullptr) const;

  const AwsOptions& options() const { return options_; }

 private:
  AwsOptions options_;
  HttpClient http_;
  Backoff backoff_;
  AwsClientMetrics metrics_;
};

}  // namespace pwrcell::adapters::aws
