#include "adapters/memory/memory_queue.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <tuple>

namespace pwrcell::adapters {
namespace {

// "<id>:<receive_count>" -> (id, receive_count); nullopt when malformed.
std::optional<std::pair<std::int64_t, int>> ParseReceipt(std::string_view receipt) {
  const auto colon = receipt.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::int64_t id = 0;
  int count = 0;
  const char* id_end = receipt.data() + colon;
  const char* end = receipt.data() + receipt.size();
  auto [p1, e1] = std::from_chars(receipt.data(), id_end, id);
  if (e1 != std::errc() || p1 != id_end || id < 1) return std::nullopt;
  auto [p2, e2] = std::from_chars(id_end + 1, end, count);
  if (e2 != std::errc() || p2 != end || count < 1) return std::nullopt;
  return std::make_pair(id, count);
}

std::string Receipt(std::int64_t id, int receive_count) {
  return std::to_string(id) + ":" + std::to_string(receive_count);
}

}  // namespace

MemoryQueue::MemoryQueue(const ports::Clock& clock, int max_receives) : clock_(clock), max_receives_(max_receives) {
  assert(max_receives >= 1 && "max_receives comes from validated configuration");
}

Result<std::string> MemoryQueue::Send(const std::string& body) {
  auto ids = SendBatch({body});
  if (!ids.ok()) return ids.status();
  return std::move(ids->front());
}

Result<std::vector<std::string>> MemoryQueue::SendBatch(const std::vector<std::string>& bodies) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBodies(bodies));
  const Timestamp now = clock_.Now();
  std::lock_guard lock(mutex_);
  std::vector<std::string> ids;
  ids.reserve(bodies.size());
  for (const auto& body : bodies) {
    const std::int64_t id = next_id_++;
    messages_.emplace(id, Message{body, now, now, 0, false, {}});
    ids.push_back(std::to_string(id));
  }
  return ids;
}

Result<std::vector<ports::ReceivedMessage>> MemoryQueue::Receive(std::size_t max_messages,
                                                                 Duration visibility_timeout) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBatchSize(max_messages, "a receive"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(visibility_timeout));
  const Timestamp now = clock_.Now();
  std::lock_guard lock(mutex_);
  std::vector<ports::ReceivedMessage> received;
  for (auto& [id, m] : messages_) {
    if (received.size() == max_messages) break;
    if (m.dead || m.visible_at > now) continue;
    if (m.receive_count >= max_receives_) {
      // Redrive: it has had its max_receives deliveries, so this receive dead-letters it and
      // looks further for a message to deliver instead.
      m.dead = true;
      m.dead_at = now;
      continue;
    }
    ++m.receive_count;
    m.visible_at = now + visibility_timeout;
    received.push_back({std::to_string(id), m.body, Receipt(id, m.receive_count), m.receive_count, m.sent_at});
  }
  return received;
}

Result<MemoryQueue::Message*> MemoryQueue::FindByReceipt(const std::string& receipt) {
  const auto parsed = ParseReceipt(receipt);
  if (!parsed) return InvalidArgumentError("malformed receipt '" + receipt + "'");
  auto it = messages_.find(parsed->first);
  if (it == messages_.end() || it->second.dead || it->second.receive_count != parsed->second) {
    return NotFoundError("receipt " + receipt + " is not the latest delivery of a queued message");
  }
  return &it->second;
}

Status MemoryQueue::Delete(const std::string& receipt) {
  std::lock_guard lock(mutex_);
  auto message = FindByReceipt(receipt);
  if (!message.ok()) return message.status();
  messages_.erase(ParseReceipt(receipt)->first);
  return Status::Ok();
}

Status MemoryQueue::DeadLetter(const std::string& receipt) {
  const Timestamp now = clock_.Now();
  std::lock_guard lock(mutex_);
  auto message = FindByReceipt(receipt);
  if (!message.ok()) return message.status();
  (*message)->dead = true;
  (*message)->dead_at = now;
  return Status::Ok();
}

Status MemoryQueue::ChangeVisibility(const std::string& receipt, Duration timeout) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(timeout));
  const Timestamp now = clock_.Now();
  std::lock_guard lock(mutex_);
  auto message = FindByReceipt(receipt);
  if (!message.ok()) return message.status();
  (*message)->visible_at = now + timeout;
  return Status::Ok();
}

Result<ports::QueueStats> MemoryQueue::Stats() {
  const Timestamp now = clock_.Now();
  std::lock_guard lock(mutex_);
  ports::QueueStats stats;
  for (const auto& [id, m] : messages_) {
    if (m.dead) {
      ++stats.dead_letter;
    } else if (m.visible_at <= now) {
      ++stats.visible;
    } else {
      ++stats.in_flight;
    }
  }
  return stats;
}

std::vector<std::int64_t> MemoryQueue::OldestDeadLetters(std::size_t max) const {
  std::vector<std::pair<std::int64_t, Timestamp>> dead;
  for (const auto& [id, m] : messages_) {
    if (m.dead) dead.emplace_back(id, m.dead_at);
  }
  std::sort(dead.begin(), dead.end(),
            [](const auto& a, const auto& b) { return std::tie(a.second, a.first) < std::tie(b.second, b.first); });
  if (dead.size() > max) dead.resize(max);
  std::vector<std::int64_t> ids;
  ids.reserve(dead.size());
  for (const auto& entry : dead) ids.push_back(entry.first);
  return ids;
}

Result<std::vector<ports::ReceivedMessage>> MemoryQueue::PeekDeadLetters(std::size_t max_messages) {
  if (max_messages == 0) return InvalidArgumentError("PeekDeadLetters needs max_messages >= 1");
  std::lock_guard lock(mutex_);
  std::vector<ports::ReceivedMessage> out;
  for (const std::int64_t id : OldestDeadLetters(max_messages)) {
    const Message& m = messages_.at(id);
    out.push_back({std::to_string(id), m.body, "", m.receive_count, m.sent_at});
  }
  return out;
}

Result<std::size_t> MemoryQueue::RedriveDeadLetters(std::size_t max_messages) {
  if (max_messages == 0) return InvalidArgumentError("RedriveDeadLetters needs max_messages >= 1");
  const Timestamp now = clock_.Now();
  std::lock_guard lock(mutex_);
  const std::vector<std::int64_t> ids = OldestDeadLetters(max_messages);
  for (const std::int64_t id : ids) {
    auto node = messages_.extract(id);
    messages_.emplace(next_id_++, Message{std::move(node.mapped().body), now, now, 0, false, {}});
  }
  return ids.size();
}

}  // namespace pwrcell::adapters
