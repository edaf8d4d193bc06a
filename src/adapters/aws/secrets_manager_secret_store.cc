#include "adapters/aws/secrets_manager_secret_store.h"

#include <cstdint>
#include <random>
#include <string_view>

namespace pwrcell::adapters::aws {
namespace {

// A random (version 4) UUID: the ClientRequestToken of one Put.
std::string RandomUuid() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  const std::uint64_t high = (random() & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  const std::uint64_t low = (random() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string uuid;
  uuid.reserve(36);
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) uuid += '-';
    const std::uint64_t word = i < 16 ? high : low;
    uuid += kHex[(word >> (4 * (15 - i % 16))) & 0xf];
  }
  return uuid;
}

// AWS's messages do not echo a SecretString (the SDKs mark it sensitive), but an emulator or a
// future message might: the value never leaves in a Status.
Status Redacted(const Status& status, std::string_view value) {
  if (status.ok() || value.empty()) return status;
  std::string message = status.message();
  bool changed = false;
  for (std::size_t at = message.find(value); at != std::string::npos; at = message.find(value, at)) {
    message.replace(at, value.size(), "<redacted>");
    at += 10;
    changed = true;
  }
  return changed ? Status(status.code(), std::move(message)) : status;
}

std::string Quoted(const std::string& id) {
  return "'" + id + "'";
}

}  // namespace

Status SecretsManagerSecretStore::Check(const std::string& secret_id) {
  return Get(secret_id).status();
}

Result<std::string> SecretsManagerSecretStore::Get(const std::string& secret_id) {
  auto answer = client_->Call(kSecretsManager, "GetSecretValue", {{"SecretId", secret_id}});
  if (!answer.ok()) {
    if (answer.status().code() == StatusCode::kNotFound) {
      return NotFoundError("no secret " + Quoted(secret_id) + " in Secrets Manager (" + answer.status().message() +
                           ")");
    }
    return answer.status().WithContext("reading secret " + Quoted(secret_id));
  }
  const auto text = answer->find("SecretString");
  if (text == answer->end() || !text->is_string()) {
    return NotFoundError("secret " + Quoted(secret_id) +
                         " holds no SecretString (a binary secret?): store its JSON as the secret's text");
  }
  return text->get<std::string>();
}

Status SecretsManagerSecretStore::Put(const std::string& secret_id, const std::string& value) {
  if (value.size() > kMaxSecretStringBytes) {
    return InvalidArgumentError("the value for secret " + Quoted(secret_id) + " is " + std::to_string(value.size()) +
                                " bytes; Secrets Manager takes at most " + std::to_string(kMaxSecretStringBytes));
  }
  auto answer = client_->Call(kSecretsManager, "PutSecretValue",
                              {{"SecretId", secret_id}, {"SecretString", value}, {"ClientRequestToken", RandomUuid()}});
  if (answer.ok()) return Status::Ok();
  const Status status = Redacted(answer.status(), value);
  if (status.code() == StatusCode::kNotFound) {
    return NotFoundError("no secret " + Quoted(secret_id) +
                         " in Secrets Manager to write (create it first): " + status.message());
  }
  return status.WithContext("writing secret " + Quoted(secret_id));
}

}  // namespace pwrcell::adapters::aws
