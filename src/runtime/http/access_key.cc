#include "runtime/http/access_key.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

namespace pwrcell::runtime::http {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Every byte position up to the longer length is visited; the lengths are folded into the
  // result instead of returning early. `volatile` keeps the compiler from short-circuiting.
  volatile unsigned char difference = a.size() == b.size() ? 0 : 1;
  const std::size_t length = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < length; ++i) {
    const auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference = static_cast<unsigned char>(difference | (x ^ y));
  }
  return difference == 0;
}

Result<std::string> ParseAccessKeySecret(const std::string& value) {
  const nlohmann::json parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return InvalidArgumentError("expected a JSON object {\"api_key\": \"...\"}");
  const auto key = parsed.find("api_key");
  if (key == parsed.end() || !key->is_string() || key->get_ref<const std::string&>().empty()) {
    return InvalidArgumentError("expected {\"api_key\": \"...\"} with a non-empty string");
  }
  return key->get<std::string>();
}

AccessKey::AccessKey(ports::SecretStore& secrets, std::string secret_id, Options options, SteadyNow now)
    : secrets_(secrets), secret_id_(std::move(secret_id)), options_(options), now_(std::move(now)) {}

AccessKey::AccessKey(ports::SecretStore& secrets, std::string secret_id)
    : AccessKey(secrets, std::move(secret_id), Options{}, [] { return std::chrono::steady_clock::now(); }) {}

Status AccessKey::Load() {
  Result<std::string> value = secrets_.Get(secret_id_);
  if (!value.ok()) return value.status().WithContext("secret " + secret_id_);
  Result<std::string> key = ParseAccessKeySecret(*value);
  if (!key.ok()) return key.status().WithContext("secret " + secret_id_);
  std::lock_guard lock(mutex_);
  key_ = std::move(key).value();
  read_at_ = now_();
  return Status::Ok();
}

void AccessKey::Refresh(std::chrono::steady_clock::time_point now) {
  read_at_ = now;  // a failed read is not retried before the next interval either
  Result<std::string> value = secrets_.Get(secret_id_);
  Result<std::string> key = value.ok() ? ParseAccessKeySecret(*value) : Result<std::string>(value.status());
  if (!key.ok()) {
    spdlog::warn("ingest: cannot read access key secret {} again, keeping the key read before: {}", secret_id_,
                 key.status().ToString());
    return;
  }
  key_ = std::move(key).value();
}

AccessKey::Verdict AccessKey::Check(std::string_view presented) {
  if (presented.empty()) return Verdict::kMissing;
  std::lock_guard lock(mutex_);
  const auto now = now_();
  if (now - read_at_ >= options_.refresh_after) Refresh(now);
  if (ConstantTimeEquals(presented, key_)) return Verdict::kAccepted;
  // Perhaps the key was rotated since it was read.
  if (now - read_at_ < options_.recheck_after) return Verdict::kWrong;
  Refresh(now);
  return ConstantTimeEquals(presented, key_) ? Verdict::kAccepted : Verdict::kWrong;
}

}  // namespace pwrcell::runtime::http
