#include "adapters/aws/sqs_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <utility>

#include "common/base64.h"

namespace pwrcell::adapters::aws {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr std::string_view kBase64 = "base64";
constexpr std::string_view kEmpty = "empty";
// What the empty body is sent as (SQS wants at least one character); marked "empty".
constexpr std::string_view kEmptyBodyText = "-";
// The attributes a dead letter sent by DeadLetter carries about the message it was.
constexpr std::string_view kDeadIdAttribute = "pwrcell-dead-id";
constexpr std::string_view kDeadSentAtAttribute = "pwrcell-dead-sent-at";
constexpr std::string_view kDeadReceiveCountAttribute = "pwrcell-dead-receive-count";
// Room left for the attributes of the largest message (encoding + the three dead-letter ones take
// about 250 bytes with a 36-character message id).
constexpr std::size_t kAttributeAllowance = 1024;
static_assert((ports::kMaxQueueMessageBytes + 2) / 3 * 4 + kAttributeAllowance <= SqsQueue::kSqsMessageLimit,
              "the largest body, base64-encoded, with its attributes must fit one SQS message");

constexpr int kMaxWaitSeconds = 20;           // ReceiveMessage's WaitTimeSeconds
constexpr int kMaxVisibilitySeconds = 43200;  // 12 h
constexpr std::size_t kMaxQueueNameForDlq = 76;
constexpr std::string_view kDeadLetterSuffix = "-dlq";

// ---- Bodies ----

bool IsSqsCharacter(std::uint32_t c) {
  return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD) ||
         (c >= 0x10000 && c <= 0x10FFFF);
}

// True when `bytes` is non-empty, well-formed UTF-8 (no overlong forms, no surrogates) of
// characters SQS accepts in a message body.
bool IsSqsText(std::string_view bytes) {
  if (bytes.empty()) return false;
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    std::uint32_t code = 0;
    std::size_t length = 0;
    if (lead < 0x80) {
      code = lead;
      length = 1;
    } else if ((lead & 0xE0) == 0xC0) {
      code = lead & 0x1Fu;
      length = 2;
    } else if ((lead & 0xF0) == 0xE0) {
      code = lead & 0x0Fu;
      length = 3;
    } else if ((lead & 0xF8) == 0xF0) {
      code = lead & 0x07u;
      length = 4;
    } else {
      return false;
    }
    if (i + length > bytes.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(bytes[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3Fu);
    }
    if ((length == 2 && code < 0x80) || (length == 3 && code < 0x800) || (length == 4 && code < 0x10000)) {
      return false;  // overlong
    }
    if (!IsSqsCharacter(code)) return false;
    i += length;
  }
  return true;
}

json StringAttribute(std::string_view value, std::string_view type = "String") {
  return {{"DataType", type}, {"StringValue", value}};
}

// The SQS form of a body: itself when SQS takes it as text, else base64 (or the empty marker).
std::pair<std::string, std::string> Encode(const std::string& body) {
  if (body.empty()) return {std::string(kEmptyBodyText), std::string(kEmpty)};
  if (IsSqsText(body)) return {body, ""};
  return {Base64Encode(body), std::string(kBase64)};
}

std::string StringField(const json& object, std::string_view key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// A message attribute's StringValue ("" when absent).
std::string MessageAttribute(const json& message, std::string_view name) {
  const auto attributes = message.find("MessageAttributes");
  if (attributes == message.end() || !attributes->is_object()) return "";
  const auto it = attributes->find(name);
  return it == attributes->end() ? "" : StringField(*it, "StringValue");
}

std::optional<std::int64_t> ParseInt(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// A JSON value that is a number or a string of one (SQS answers numbers as strings; a
// RedrivePolicy written by hand may hold either).
std::optional<std::int64_t> IntField(const json& object, std::string_view key) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_string()) return ParseInt(it->get_ref<const std::string&>());
  return std::nullopt;
}

std::string DecodeText(std::string text, const std::string& encoding, const std::string& message_id,
                       std::string_view queue) {
  if (encoding.empty()) return text;
  if (encoding == kEmpty) return "";
  if (encoding == kBase64) {
    if (auto bytes = Base64Decode(text); bytes.ok()) return std::move(bytes).value();
  }
  // Not written by this adapter as it claims: hand over the text, which the handler will refuse
  // (and dead-letter) rather than block the queue on it.
  spdlog::warn("SQS queue {}: message {} marked {}='{}' does not decode; delivered as its text", queue, message_id,
               SqsQueue::kEncodingAttribute, encoding);
  return text;
}

std::string DecodeBody(const json& message, std::string_view queue) {
  return DecodeText(StringField(message, "Body"), MessageAttribute(message, SqsQueue::kEncodingAttribute),
                    StringField(message, "MessageId"), queue);
}

seconds CeilSeconds(Duration duration) {
  return std::chrono::ceil<seconds>(duration);
}

std::string Truncated(std::string_view text) {
  constexpr std::size_t kShown = 80;
  return text.size() <= kShown ? std::string(text) : std::string(text.substr(0, kShown)) + "...";
}

bool IsQueueNameForDlq(std::string_view name) {
  if (name.empty() || name.size() > kMaxQueueNameForDlq) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::string RandomTag() {
  std::random_device device;
  const std::uint64_t value = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));  // NOLINT(google-runtime-int)
  return text;
}

// Creates `name` with `attributes`, or sets them on the existing queue of that name; its URL.
Result<std::string> CreateOrUpdate(const AwsClient& client, const std::string& name, const json& attributes) {
  AwsError error;
  auto created = client.Call(kSqs, "CreateQueue", {{"QueueName", name}, {"Attributes", attributes}}, &error);
  if (created.ok()) return StringField(*created, "QueueUrl");
  if (created.status().code() != StatusCode::kAlreadyExists) {
    return created.status().WithContext("creating SQS queue '" + name + "'");
  }
  // It exists with other attributes: converge on these.
  auto url = client.Call(kSqs, "GetQueueUrl", {{"QueueName", name}});
  if (!url.ok()) return url.status().WithContext("SQS queue '" + name + "'");
  std::string queue_url = StringField(*url, "QueueUrl");
  auto set = client.Call(kSqs, "SetQueueAttributes", {{"QueueUrl", queue_url}, {"Attributes", attributes}});
  if (!set.ok()) return set.status().WithContext("setting the attributes of SQS queue '" + name + "'");
  return queue_url;
}

// The status of a failed batch entry: SenderFault entries are the request's fault (permanent).
Status BatchEntryError(const json& failed, std::string_view operation) {
  const bool sender_fault = failed.is_object() && failed.value("SenderFault", false);
  std::string message = std::string(operation) + ": entry " + StringField(failed, "Id") +
                        " failed: " + StringField(failed, "Code") + ": " + StringField(failed, "Message");
  return sender_fault ? InvalidArgumentError(std::move(message)) : UnavailableError(std::move(message));
}

const json& ArrayField(const json& object, std::string_view key) {
  static const json empty_array = json::array();
  if (!object.is_object()) return empty_array;
  const auto it = object.find(key);
  return it != object.end() && it->is_array() ? *it : empty_array;
}

}  // namespace

// ---- Creation and opening ----

Status SqsQueue::CreateQueues(const AwsClient& client, const std::string& name, int max_receives,
                              const SqsQueueCreateOptions& options) {
  if (!IsQueueNameForDlq(name)) {
    return InvalidArgumentError("SQS queue name '" + Truncated(name) +
                                "' must be 1..76 letters, digits, '-' or '_' (the dead-letter queue adds '-dlq')");
  }
  if (max_receives < 1 || max_receives > 1000) {
    return InvalidArgumentError("max_receives of SQS queue '" + name +
                                "' must be 1..1000 (SQS's maxReceiveCount), not " + std::to_string(max_receives));
  }
  const auto retention = options.retention.count();
  if (retention < 60 || retention > 1209600) {
    return InvalidArgumentError("retention of SQS queue '" + name + "' must be 60 s..14 days, not " +
                                std::to_string(retention) + " s");
  }
  const std::string dead_letter_name = name + std::string(kDeadLetterSuffix);
  auto dead_letter_url =
      CreateOrUpdate(client, dead_letter_name, {{"MessageRetentionPeriod", std::to_string(retention)}});
  if (!dead_letter_url.ok()) return dead_letter_url.status();
  auto arn =
      client.Call(kSqs, "GetQueueAttributes", {{"QueueUrl", *dead_letter_url}, {"AttributeNames", {"QueueArn"}}});
  if (!arn.ok()) return arn.status().WithContext("SQS queue '" + dead_letter_name + "'");
  const std::string dead_letter_arn = StringField(arn->value("Attributes", json::object()), "QueueArn");
  if (dead_letter_arn.empty())
    return UnavailableError("SQS queue '" + dead_letter_name + "' has no QueueArn attribute");
  const json policy = {{"deadLetterTargetArn", dead_letter_arn}, {"maxReceiveCount", std::to_string(max_receives)}};
  auto url = CreateOrUpdate(client, name,
                            {{"MessageRetentionPeriod", std::to_string(retention)}, {"RedrivePolicy", policy.dump()}});
  return url.ok() ? Status::Ok() : url.status();
}

Result<std::unique_ptr<SqsQueue>> SqsQueue::Open(std::shared_ptr<const AwsClient> client, std::string name,
                                                 SqsQueueOptions options) {
  const auto in_range = [](seconds value, std::int64_t low, std::int64_t high) {
    return value.count() >= low && value.count() <= high;
  };
  if (!in_range(options.wait_time, 0, kMaxWaitSeconds) ||
      !in_range(options.dead_letter_wait_time, 0, kMaxWaitSeconds)) {
    return InvalidArgumentError("SQS queue '" + name + "': wait times must be 0..20 s");
  }
  if (options.wait_time >= client->options().timeout || options.dead_letter_wait_time >= client->options().timeout) {
    return InvalidArgumentError("SQS queue '" + name + "': a wait time must be shorter than the AWS call timeout");
  }
  if (!in_range(options.hold, 1, kMaxVisibilitySeconds)) {
    return InvalidArgumentError("SQS queue '" + name + "': hold must be 1..43200 s");
  }
  const std::string context = "SQS queue '" + name + "'";
  auto url_answer = client->Call(kSqs, "GetQueueUrl", {{"QueueName", name}});
  if (!url_answer.ok()) return url_answer.status().WithContext(context);
  std::string url = StringField(*url_answer, "QueueUrl");

  auto attributes =
      client->Call(kSqs, "GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"RedrivePolicy"}}});
  if (!attributes.ok()) return attributes.status().WithContext(context);
  const std::string policy_text = StringField(attributes->value("Attributes", json::object()), "RedrivePolicy");
  if (policy_text.empty()) {
    return FailedPreconditionError(context +
                                   " has no dead-letter queue (no RedrivePolicy attribute); create the pair with "
                                   "SqsQueue::CreateQueues or give the queue a redrive policy");
  }
  const json policy = json::parse(policy_text, nullptr, /*allow_exceptions=*/false);
  const std::string target = StringField(policy, "deadLetterTargetArn");
  const auto max_receives = IntField(policy, "maxReceiveCount");
  // arn:<partition>:sqs:<region>:<account>:<name>
  std::vector<std::string> arn_parts;
  for (std::size_t start = 0;;) {
    const auto colon = target.find(':', start);
    arn_parts.push_back(target.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (!max_receives || *max_receives < 1 || arn_parts.size() != 6 || arn_parts[5].empty()) {
    return FailedPreconditionError(context +
                                   " has a RedrivePolicy this adapter cannot read: " + Truncated(policy_text));
  }
  auto dead_letter =
      client->Call(kSqs, "GetQueueUrl", {{"QueueName", arn_parts[5]}, {"QueueOwnerAWSAccountId", arn_parts[4]}});
  if (!dead_letter.ok()) {
    return dead_letter.status().WithContext("dead-letter queue '" + arn_parts[5] + "' of " + context);
  }
  return std::unique_ptr<SqsQueue>(new SqsQueue(std::move(client), std::move(name), std::move(url),
                                                StringField(*dead_letter, "QueueUrl"), static_cast<int>(*max_receives),
                                                options));
}

SqsQueue::SqsQueue(std::shared_ptr<const AwsClient> client, std::string name, std::string url,
                   std::string dead_letter_url, int max_receives, SqsQueueOptions options)
    : client_(std::move(client)),
      name_(std::move(name)),
      url_(std::move(url)),
      dead_letter_url_(std::move(dead_letter_url)),
      max_receives_(max_receives),
      options_(options),
      receipt_prefix_("sqs:" + RandomTag() + ":") {}

// ---- Sending ----

Result<std::string> SqsQueue::Send(const std::string& body) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBodies({body}));
  auto [text, encoding] = Encode(body);
  json request = {{"QueueUrl", url_}, {"MessageBody", std::move(text)}};
  if (!encoding.empty()) request["MessageAttributes"] = {{kEncodingAttribute, StringAttribute(encoding)}};
  auto sent = client_->Call(kSqs, "SendMessage", request);
  if (!sent.ok()) return sent.status().WithContext("SQS queue " + name_);
  return StringField(*sent, "MessageId");
}

Result<std::vector<std::string>> SqsQueue::SendBatch(const std::vector<std::string>& bodies) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBodies(bodies));
  std::vector<json> entries;
  entries.reserve(bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    auto [text, encoding] = Encode(bodies[i]);
    json entry = {{"Id", std::to_string(i)}, {"MessageBody", std::move(text)}};
    if (!encoding.empty()) entry["MessageAttributes"] = {{kEncodingAttribute, StringAttribute(encoding)}};
    entries.push_back(std::move(entry));
  }
  std::vector<std::string> ids(bodies.size());
  std::vector<json> pending = entries;
  // One more round for the entries that failed on AWS's side (SenderFault false); a sender fault
  // would fail again.
  for (int round = 0; round < 2 && !pending.empty(); ++round) {
    auto sent = client_->Call(kSqs, "SendMessageBatch", {{"QueueUrl", url_}, {"Entries", pending}});
    if (!sent.ok()) return sent.status().WithContext("SQS queue " + name_);
    for (const auto& ok : ArrayField(*sent, "Successful")) {
      const auto index = ParseInt(StringField(ok, "Id"));
      if (index && *index >= 0 && static_cast<std::size_t>(*index) < ids.size()) {
        ids[static_cast<std::size_t>(*index)] = StringField(ok, "MessageId");
      }
    }
    std::vector<json> retry;
    Status first_error = Status::Ok();
    for (const auto& failed : ArrayField(*sent, "Failed")) {
      Status error = BatchEntryError(failed, "SendMessageBatch");
      if (first_error.ok()) first_error = error;
      const auto index = ParseInt(StringField(failed, "Id"));
      if (error.IsRetryable() && index && *index >= 0 && static_cast<std::size_t>(*index) < entries.size()) {
        retry.push_back(entries[static_cast<std::size_t>(*index)]);
      } else {
        retry.clear();
        pending.clear();
        break;
      }
    }
    if (!first_error.ok() && (retry.empty() || round == 1)) {
      const auto stored =
          static_cast<std::size_t>(std::count_if(ids.begin(), ids.end(), [](const auto& id) { return !id.empty(); }));
      return Status(first_error.code(), first_error.message() + " (" + std::to_string(stored) + " of " +
                                            std::to_string(ids.size()) +
                                            " messages were stored; SQS batches are "
                                            "not atomic)")
          .WithContext("SQS queue " + name_);
    }
    pending = std::move(retry);
  }
  return ids;
}

// ---- Receiving ----

Result<json> SqsQueue::ReceiveFrom(const std::string& url, std::size_t max_messages, seconds visibility,
                                   seconds wait) const {
  static const json system_attributes = {"ApproximateReceiveCount", "SentTimestamp"};
  static const json message_attributes = {kEncodingAttribute, kDeadIdAttribute, kDeadSentAtAttribute,
                                          kDeadReceiveCountAttribute};
  auto received = client_->Call(kSqs, "ReceiveMessage",
                                {{"QueueUrl", url},
                                 {"MaxNumberOfMessages", max_messages},
                                 {"VisibilityTimeout", visibility.count()},
                                 {"WaitTimeSeconds", wait.count()},
                                 {"MessageSystemAttributeNames", system_attributes},
                                 {"MessageAttributeNames", message_attributes}});
  if (!received.ok()) return received.status().WithContext("SQS queue " + name_);
  return ArrayField(*received, "Messages");
}

Result<std::vector<ports::ReceivedMessage>> SqsQueue::Receive(std::size_t max_messages, Duration visibility_timeout) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBatchSize(max_messages, "a receive"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(visibility_timeout));
  const seconds visibility = CeilSeconds(visibility_timeout);
  const SteadyTime start = std::chrono::steady_clock::now();
  auto messages = ReceiveFrom(url_, max_messages, visibility, options_.wait_time);
  if (!messages.ok()) return messages.status();

  std::vector<ports::ReceivedMessage> received;
  received.reserve(messages->size());
  std::lock_guard lock(mutex_);
  if (deliveries_.size() >= prune_at_) {
    const SteadyTime now = std::chrono::steady_clock::now();
    for (auto it = deliveries_.begin(); it != deliveries_.end();) {
      if (it->second.deadline <= now) {
        const auto latest = latest_delivery_.find(it->second.message_id);
        if (latest != latest_delivery_.end() && latest->second == it->first) latest_delivery_.erase(latest);
        it = deliveries_.erase(it);
      } else {
        ++it;
      }
    }
    prune_at_ = std::max<std::size_t>(1024, 2 * deliveries_.size());
  }
  for (const auto& message : *messages) {
    Delivery delivery;
    delivery.message_id = StringField(message, "MessageId");
    delivery.handle = StringField(message, "ReceiptHandle");
    delivery.deadline = start + visibility;
    const auto latest = latest_delivery_.find(delivery.message_id);
    if (latest != latest_delivery_.end()) {
      const auto held = deliveries_.find(latest->second);
      if (held != deliveries_.end() && held->second.deadline > start) {
        // A message this object holds in flight, delivered again before its visibility timeout
        // could have run out: SQS's at-least-once duplicate (moto's threaded server makes them when
        // receives race). Not handed out twice: the holder keeps it, with the newer handle (the one
        // SQS honours) and the visibility timeout this receive set.
        held->second.handle = std::move(delivery.handle);
        held->second.deadline = delivery.deadline;
        spdlog::debug("SQS queue {}: message {} delivered again while in flight; not handed out twice", name_,
                      delivery.message_id);
        continue;
      }
    }
    delivery.wire = {StringField(message, "Body"), MessageAttribute(message, kEncodingAttribute)};
    const json& attributes = message.contains("Attributes") ? message["Attributes"] : json::object();
    delivery.receive_count = static_cast<int>(IntField(attributes, "ApproximateReceiveCount").value_or(1));
    delivery.sent_at = FromUnixMillis(IntField(attributes, "SentTimestamp").value_or(0));

    ports::ReceivedMessage out;
    out.id = delivery.message_id;
    out.body = DecodeBody(message, name_);
    out.receive_count = delivery.receive_count;
    out.sent_at = delivery.sent_at;
    const std::uint64_t sequence = next_sequence_++;
    out.receipt = receipt_prefix_ + std::to_string(sequence);
    // A new delivery of a message supersedes the earlier one this object handed out.
    if (latest != latest_delivery_.end()) {
      deliveries_.erase(latest->second);
      latest->second = sequence;
    } else {
      latest_delivery_.emplace(delivery.message_id, sequence);
    }
    deliveries_.emplace(sequence, std::move(delivery));
    received.push_back(std::move(out));
  }
  return received;
}

// ---- Receipts ----

Result<SqsQueue::Delivery> SqsQueue::FindDelivery(const std::string& receipt, std::uint64_t* sequence) {
  // "sqs:<16 hex>:<sequence>"
  constexpr std::size_t kPrefixSize = 4 + 16 + 1;
  const auto malformed = [&] {
    return InvalidArgumentError("malformed SQS queue receipt '" + Truncated(receipt) + "'");
  };
  if (receipt.size() <= kPrefixSize || receipt.compare(0, 4, "sqs:") != 0 || receipt[kPrefixSize - 1] != ':') {
    return malformed();
  }
  for (std::size_t i = 4; i < kPrefixSize - 1; ++i) {
    const char c = receipt[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return malformed();
  }
  const std::string_view digits = std::string_view(receipt).substr(kPrefixSize);
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (error != std::errc() || end != digits.data() + digits.size() || value == 0 || digits[0] == '0') {
    return malformed();
  }
  if (receipt.compare(0, kPrefixSize, receipt_prefix_) != 0) {
    return NotFoundError("receipt " + receipt + " was not handed out by this SQS queue object (" + name_ +
                         "): another queue's, or another process's");
  }
  std::lock_guard lock(mutex_);
  const auto it = deliveries_.find(value);
  if (it == deliveries_.end()) {
    return NotFoundError("receipt " + receipt + " of SQS queue " + name_ +
                         " is not a live delivery (deleted, dead-lettered, delivered again or expired)");
  }
  if (std::chrono::steady_clock::now() + kReceiptMargin >= it->second.deadline) {
    const auto latest = latest_delivery_.find(it->second.message_id);
    if (latest != latest_delivery_.end() && latest->second == value) latest_delivery_.erase(latest);
    deliveries_.erase(it);
    return NotFoundError("the visibility timeout of receipt " + receipt + " of SQS queue " + name_ +
                         " has run out: the message may have been delivered again");
  }
  *sequence = value;
  return it->second;
}

void SqsQueue::Forget(std::uint64_t sequence) {
  std::lock_guard lock(mutex_);
  const auto it = deliveries_.find(sequence);
  if (it == deliveries_.end()) return;
  const auto latest = latest_delivery_.find(it->second.message_id);
  if (latest != latest_delivery_.end() && latest->second == sequence) latest_delivery_.erase(latest);
  deliveries_.erase(it);
}

Status SqsQueue::ReceiptCallError(const Status& status, const AwsError& error, std::string_view what) const {
  const auto ends_with = [&](std::string_view suffix) {
    return error.code.size() >= suffix.size() &&
           error.code.compare(error.code.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::string lower = error.message;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool handle_gone = ends_with("ReceiptHandleIsInvalid") || ends_with("MessageNotInflight") ||
                           (ends_with("InvalidParameterValue") && lower.find("receipt handle") != std::string::npos);
  if (handle_gone) return NotFoundError(std::string(what) + ": " + status.message());
  return status.WithContext(std::string(what));
}

Status SqsQueue::Delete(const std::string& receipt) {
  std::uint64_t sequence = 0;
  auto delivery = FindDelivery(receipt, &sequence);
  if (!delivery.ok()) return delivery.status();
  AwsError error;
  auto deleted =
      client_->Call(kSqs, "DeleteMessage", {{"QueueUrl", url_}, {"ReceiptHandle", delivery->handle}}, &error);
  if (!deleted.ok()) {
    Status status = ReceiptCallError(deleted.status(), error, "SQS queue " + name_);
    if (status.code() == StatusCode::kNotFound) Forget(sequence);
    return status;
  }
  Forget(sequence);
  return Status::Ok();
}

Status SqsQueue::ChangeVisibility(const std::string& receipt, Duration timeout) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(timeout));
  std::uint64_t sequence = 0;
  auto delivery = FindDelivery(receipt, &sequence);
  if (!delivery.ok()) return delivery.status();
  const seconds visibility = CeilSeconds(timeout);
  const SteadyTime start = std::chrono::steady_clock::now();
  AwsError error;
  auto changed = client_->Call(
      kSqs, "ChangeMessageVisibility",
      {{"QueueUrl", url_}, {"ReceiptHandle", delivery->handle}, {"VisibilityTimeout", visibility.count()}}, &error);
  if (!changed.ok()) {
    Status status = ReceiptCallError(changed.status(), error, "SQS queue " + name_);
    if (status.code() == StatusCode::kNotFound) Forget(sequence);
    return status;
  }
  std::lock_guard lock(mutex_);
  if (auto it = deliveries_.find(sequence); it != deliveries_.end()) it->second.deadline = start + visibility;
  return Status::Ok();
}

std::string SqsQueue::DecodeForeignBody(const ForeignMessage& message, std::string_view queue) {
  return DecodeText(message.text, message.encoding, message.message_id, queue);
}

Status SqsQueue::ChangeForeignVisibility(const std::string& receipt_handle, Duration timeout) const {
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(timeout));
  AwsError error;
  auto changed = client_->Call(
      kSqs, "ChangeMessageVisibility",
      {{"QueueUrl", url_}, {"ReceiptHandle", receipt_handle}, {"VisibilityTimeout", CeilSeconds(timeout).count()}},
      &error);
  if (!changed.ok()) return ReceiptCallError(changed.status(), error, "SQS queue " + name_);
  return Status::Ok();
}

Status SqsQueue::SendToDeadLetterQueue(const ForeignMessage& message) const {
  json attributes = {{kDeadIdAttribute, StringAttribute(message.message_id)},
                     {kDeadSentAtAttribute, StringAttribute(std::to_string(ToUnixMillis(message.sent_at)), "Number")},
                     {kDeadReceiveCountAttribute, StringAttribute(std::to_string(message.receive_count), "Number")}};
  if (!message.encoding.empty()) attributes[kEncodingAttribute] = StringAttribute(message.encoding);
  auto sent =
      client_->Call(kSqs, "SendMessage",
                    {{"QueueUrl", dead_letter_url_}, {"MessageBody", message.text}, {"MessageAttributes", attributes}});
  if (!sent.ok())
    return sent.status().WithContext("dead-lettering message " + message.message_id + " of SQS queue " + name_);
  return Status::Ok();
}

Status SqsQueue::DeadLetter(const std::string& receipt) {
  std::uint64_t sequence = 0;
  auto delivery = FindDelivery(receipt, &sequence);
  if (!delivery.ok()) return delivery.status();
  if (!delivery->dead_letter_sent) {
    json attributes = {
        {kDeadIdAttribute, StringAttribute(delivery->message_id)},
        {kDeadSentAtAttribute, StringAttribute(std::to_string(ToUnixMillis(delivery->sent_at)), "Number")},
        {kDeadReceiveCountAttribute, StringAttribute(std::to_string(delivery->receive_count), "Number")}};
    if (!delivery->wire.encoding.empty()) attributes[kEncodingAttribute] = StringAttribute(delivery->wire.encoding);
    auto sent = client_->Call(
        kSqs, "SendMessage",
        {{"QueueUrl", dead_letter_url_}, {"MessageBody", delivery->wire.text}, {"MessageAttributes", attributes}});
    if (!sent.ok()) return sent.status().WithContext("dead-lettering a message of SQS queue " + name_);
    std::lock_guard lock(mutex_);
    if (auto it = deliveries_.find(sequence); it != deliveries_.end()) it->second.dead_letter_sent = true;
  }
  AwsError error;
  auto deleted =
      client_->Call(kSqs, "DeleteMessage", {{"QueueUrl", url_}, {"ReceiptHandle", delivery->handle}}, &error);
  if (!deleted.ok()) {
    Status status = ReceiptCallError(deleted.status(), error,
                                     "SQS queue " + name_ + ": message " + delivery->message_id +
                                         " is in the dead-letter queue, but deleting it from the queue failed (it "
                                         "will be delivered again)");
    if (status.code() == StatusCode::kNotFound) Forget(sequence);
    return status;
  }
  Forget(sequence);
  return Status::Ok();
}

// ---- Stats and dead letters ----

Result<ports::QueueStats> SqsQueue::Stats() {
  const auto counts = [&](const std::string& url) -> Result<std::pair<std::size_t, std::size_t>> {
    auto answer =
        client_->Call(kSqs, "GetQueueAttributes",
                      {{"QueueUrl", url},
                       {"AttributeNames", {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}}});
    if (!answer.ok()) return answer.status().WithContext("SQS queue " + name_);
    const json& attributes = answer->contains("Attributes") ? (*answer)["Attributes"] : json::object();
    const auto visible = IntField(attributes, "ApproximateNumberOfMessages").value_or(0);
    const auto hidden = IntField(attributes, "ApproximateNumberOfMessagesNotVisible").value_or(0);
    return std::pair{static_cast<std::size_t>(std::max<std::int64_t>(visible, 0)),
                     static_cast<std::size_t>(std::max<std::int64_t>(hidden, 0))};
  };
  auto queue = counts(url_);
  if (!queue.ok()) return queue.status();
  auto dead = counts(dead_letter_url_);
  if (!dead.ok()) return dead.status();
  ports::QueueStats stats;
  stats.visible = queue->first;
  stats.in_flight = queue->second;
  stats.dead_letter = dead->first + dead->second;
  return stats;
}

ports::ReceivedMessage SqsQueue::DeadLetterMessage(const json& message) const {
  ports::ReceivedMessage out;
  const std::string original_id = MessageAttribute(message, kDeadIdAttribute);
  out.id = original_id.empty() ? StringField(message, "MessageId") : original_id;
  out.body = DecodeBody(message, name_);
  const json& attributes = message.contains("Attributes") ? message["Attributes"] : json::object();
  const auto sent_at = ParseInt(MessageAttribute(message, kDeadSentAtAttribute));
  out.sent_at = FromUnixMillis(sent_at ? *sent_at : IntField(attributes, "SentTimestamp").value_or(0));
  // Moved by SQS's redrive policy: it had exactly maxReceiveCount deliveries. (The DLQ's own
  // ApproximateReceiveCount also counts every peek.)
  const auto receive_count = ParseInt(MessageAttribute(message, kDeadReceiveCountAttribute));
  out.receive_count = receive_count ? static_cast<int>(*receive_count) : max_receives_;
  return out;
}

Status SqsQueue::ReleaseHeld(const std::vector<std::string>& handles) const {
  Status result = Status::Ok();
  for (std::size_t start = 0; start < handles.size(); start += ports::kMaxQueueBatch) {
    json entries = json::array();
    for (std::size_t i = start; i < std::min(handles.size(), start + ports::kMaxQueueBatch); ++i) {
      entries.push_back({{"Id", std::to_string(i - start)}, {"ReceiptHandle", handles[i]}, {"VisibilityTimeout", 0}});
    }
    auto released = client_->Call(kSqs, "ChangeMessageVisibilityBatch",
                                  {{"QueueUrl", dead_letter_url_}, {"Entries", std::move(entries)}});
    if (!released.ok()) {
      result = released.status();
    } else if (const auto& failed = ArrayField(*released, "Failed"); !failed.empty()) {
      result = BatchEntryError(failed.front(), "ChangeMessageVisibilityBatch");
    }
  }
  if (!result.ok()) {
    spdlog::warn("SQS queue {}: dead letters stay hidden for up to {} s: {}", name_, options_.hold.count(),
                 result.ToString());
  }
  return result;
}

Result<std::vector<ports::ReceivedMessage>> SqsQueue::PeekDeadLetters(std::size_t max_messages) {
  if (max_messages == 0) return InvalidArgumentError("PeekDeadLetters needs max_messages >= 1");
  std::vector<ports::ReceivedMessage> peeked;
  if (max_messages <= ports::kMaxQueueBatch) {
    // One read that leaves them visible.
    auto messages = ReceiveFrom(dead_letter_url_, max_messages, seconds(0), options_.dead_letter_wait_time);
    if (!messages.ok()) return messages.status();
    for (const auto& message : *messages) peeked.push_back(DeadLetterMessage(message));
    return peeked;
  }
  // More than one read's worth: hide each batch read so that the next read goes further, then
  // make them all visible again.
  std::vector<std::string> held;
  std::set<std::string> seen;
  Status status = Status::Ok();
  while (peeked.size() < max_messages) {
    auto messages = ReceiveFrom(dead_letter_url_, std::min(ports::kMaxQueueBatch, max_messages - peeked.size()),
                                options_.hold, options_.dead_letter_wait_time);
    if (!messages.ok()) {
      status = messages.status();
      break;
    }
    if (messages->empty()) break;
    for (const auto& message : *messages) {
      held.push_back(StringField(message, "ReceiptHandle"));
      if (seen.insert(StringField(message, "MessageId")).second) peeked.push_back(DeadLetterMessage(message));
    }
  }
  (void)ReleaseHeld(held);  // logged; they come back after `hold` at worst
  if (!status.ok()) return status;
  if (peeked.size() > max_messages) peeked.resize(max_messages);
  return peeked;
}

Result<std::size_t> SqsQueue::RedriveDeadLetters(std::size_t max_messages) {
  if (max_messages == 0) return InvalidArgumentError("RedriveDeadLetters needs max_messages >= 1");
  std::size_t moved = 0;
  const auto failed_after = [&](const Status& status) {
    return status.WithContext("redriving the dead letters of SQS queue " + name_ + " (" + std::to_string(moved) +
                              " moved before the error)");
  };
  while (moved < max_messages) {
    auto messages = ReceiveFrom(dead_letter_url_, std::min(ports::kMaxQueueBatch, max_messages - moved), options_.hold,
                                options_.dead_letter_wait_time);
    if (!messages.ok()) return failed_after(messages.status());
    if (messages->empty()) break;

    // To the queue first: a crash after this duplicates the batch, never loses it.
    json entries = json::array();
    std::vector<std::string> handles;
    for (std::size_t i = 0; i < messages->size(); ++i) {
      const json& message = (*messages)[i];
      // A new message: the body and its encoding only, not the dead letter's own attributes.
      json entry = {{"Id", std::to_string(i)}, {"MessageBody", StringField(message, "Body")}};
      const std::string encoding = MessageAttribute(message, kEncodingAttribute);
      if (!encoding.empty()) entry["MessageAttributes"] = {{kEncodingAttribute, StringAttribute(encoding)}};
      entries.push_back(std::move(entry));
      handles.push_back(StringField(message, "ReceiptHandle"));
    }
    auto sent = client_->Call(kSqs, "SendMessageBatch", {{"QueueUrl", url_}, {"Entries", std::move(entries)}});
    if (!sent.ok()) {
      (void)ReleaseHeld(handles);
      return failed_after(sent.status());
    }
    json deletes = json::array();
    for (const auto& ok : ArrayField(*sent, "Successful")) {
      const auto index = ParseInt(StringField(ok, "Id"));
      if (!index || *index < 0 || static_cast<std::size_t>(*index) >= handles.size()) continue;
      deletes.push_back({{"Id", std::to_string(*index)}, {"ReceiptHandle", handles[static_cast<std::size_t>(*index)]}});
    }
    std::vector<std::string> unsent;
    Status send_error = Status::Ok();
    for (const auto& failed : ArrayField(*sent, "Failed")) {
      if (send_error.ok()) send_error = BatchEntryError(failed, "SendMessageBatch");
      const auto index = ParseInt(StringField(failed, "Id"));
      if (index && *index >= 0 && static_cast<std::size_t>(*index) < handles.size()) {
        unsent.push_back(handles[static_cast<std::size_t>(*index)]);
      }
    }
    const std::size_t sent_count = deletes.size();
    if (sent_count > 0) {
      auto deleted = client_->Call(kSqs, "DeleteMessageBatch", {{"QueueUrl", dead_letter_url_}, {"Entries", deletes}});
      moved += sent_count;
      Status delete_error = deleted.ok() ? Status::Ok() : deleted.status();
      if (deleted.ok() && !ArrayField(*deleted, "Failed").empty()) {
        delete_error = BatchEntryError(ArrayField(*deleted, "Failed").front(), "DeleteMessageBatch");
      }
      if (!delete_error.ok()) {
        (void)ReleaseHeld(unsent);
        return failed_after(delete_error.WithContext(
            "some redriven messages are still in the dead-letter queue too and will be redriven again"));
      }
    }
    if (!send_error.ok()) {
      (void)ReleaseHeld(unsent);
      return failed_after(send_error);
    }
  }
  return moved;
}

}  // namespace pwrcell::adapters::aws
