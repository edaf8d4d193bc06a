// The secrets (ports/secret_store.h: ConcertoCredentials, CesCredentials) in AWS Secrets Manager,
// one secret per id, its value the secret's SecretString (JSON text).
//
// Get is one GetSecretValue of the AWSCURRENT version; Put is one PutSecretValue, which makes the
// new value AWSCURRENT (a new secret version) for every instance at once. That is how the Concerto
// token written by one instance reaches the others, as the shared file does in `serve`.
//
// No cache: every Get reads Secrets Manager. The Concerto client reads its secret only when its own
// token is stale or was refused, and then it must see the token another instance wrote a moment
// ago; a cache would make it authenticate again instead (and CesCredentials are read as rarely).
// At those rates a GetSecretValue per read costs nothing worth saving.
//
// Secrets are created by the operator (or the deployment template), never here: Put replaces the
// value of an existing secret and answers kNotFound for an unknown id, so the adapter needs no
// secretsmanager:CreateSecret permission. IAM: secretsmanager:GetSecretValue and
// secretsmanager:PutSecretValue on the two secrets (and kms:Decrypt / kms:GenerateDataKey on a
// customer managed key, if the secrets use one).
//
// AWS's rules, checked here as AWS checks them (moto accepts more): a SecretString is at most
// 65,536 bytes (kInvalidArgument before any call). Each Put is a new version of the secret; AWS
// asks for no more than one PutSecretValue per secret every 10 minutes sustained (versions
// younger than 24 h are kept), which a token renewed every few hours is far below.
//
// Put sends a ClientRequestToken (a random UUID) as AWS requires of raw HTTP callers, so that the
// client's retry of a Put whose answer was lost is recognised and does not make a second version.
//
// Values never appear in an error message or a log line: errors name the secret id, the operation
// and AWS's error code and message, and any occurrence of the value in AWS's message is replaced
// by "<redacted>".
//
// Thread-safe (the object holds its client and nothing else).
// Errors: kNotFound naming the id when the secret does not exist, has no AWSCURRENT version or
// holds only a SecretBinary (Get); kInvalidArgument for a value over 65,536 bytes or one AWS
// refuses (Put), or a secret marked for deletion (InvalidRequestException); kUnavailable /
// kResourceExhausted when Secrets Manager cannot be reached or throttles (retryable, after the
// client's retries); kUnauthenticated / kPermissionDenied for credentials, IAM or KMS refusals.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "adapters/aws/aws_client.h"
#include "ports/secret_store.h"

namespace pwrcell::adapters::aws {

// AWS's largest SecretString, in bytes.
inline constexpr std::size_t kMaxSecretStringBytes = 65'536;

class SecretsManagerSecretStore final : public ports::SecretStore {
 public:
  explicit SecretsManagerSecretStore(std::shared_ptr<AwsClient> client) : client_(std::move(client)) {}

  // Reads the secret once, so that a missing secret or a refused permission stops the program at
  // start with the secret's id and AWS's error. Errors: those of Get.
  Status Check(const std::string& secret_id);

  Result<std::string> Get(const std::string& secret_id) override;
  Status Put(const std::string& secret_id, const std::string& value) override;

 private:
  std::shared_ptr<AwsClient> client_;
};

}  // namespace pwrcell::adapters::aws
