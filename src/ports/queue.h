// Queue port: a durable at-least-once queue with SQS semantics.
//
// - A received message is invisible for its visibility timeout; not deleted by then, it is
//   delivered again with a higher receive_count.
// - A message delivered max_receives times and still not deleted is moved to the queue's
//   dead-letter store on its next receive (it is never handed out again).
// - Delete takes the receipt of the latest delivery; a stale receipt leaves the message alone.
// - Dead letters stay in the store until an operator redrives them (RedriveDeadLetters).
//
// Implementations: adapters/memory (fake), adapters/sqlite, adapters/aws (SQS); all must pass
// tests/conformance/queue_conformance. All methods are thread-safe.
// Errors: kUnavailable when the backing store cannot be reached; kInvalidArgument for a
// bad argument (empty batch above the limit, zero max, a body above kMaxQueueMessageBytes);
// kNotFound for an unknown receipt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pwrcell::ports {

struct ReceivedMessage {
  std::string id;         // stable across deliveries
  std::string body;       // opaque bytes
  std::string receipt;    // identifies this delivery; needed to delete or change visibility
  int receive_count = 0;  // 1 on the first delivery
  Timestamp sent_at;
};

struct QueueStats {
  std::size_t visible = 0;      // ready to be received
  std::size_t in_flight = 0;    // received, not deleted, visibility not expired
  std::size_t dead_letter = 0;  // moved to the dead-letter store
};

// Largest batch for SendBatch / Receive (SQS's limit, so every backend can honour it).
inline constexpr std::size_t kMaxQueueBatch = 10;
// Longest visibility timeout for Receive / ChangeVisibility (SQS's limit, for the same reason);
// a negative or longer one is kInvalidArgument.
inline constexpr Duration kMaxVisibilityTimeout = std::chrono::hours(12);

// Largest message body every backend accepts, in bytes (190 KiB). SQS's limit is 256 KiB for a
// message with its attributes, and its SQS backend sends binary bodies base64-encoded (4/3 of
// their size) with a marking attribute: 190 KiB of bytes is 253.3 KiB encoded, which leaves room
// for the attributes. A larger payload is split by its producer before it is queued, never
// truncated; every backend refuses it alike (CheckQueueMessageSize).
inline constexpr std::size_t kMaxQueueMessageBytes = std::size_t{190} * 1024;

// The argument checks every backend makes, so that they all answer alike.
// kInvalidArgument unless 1 <= n <= kMaxQueueBatch; `what` names the argument in the message.
inline Status CheckQueueBatchSize(std::size_t n, std::string_view what) {
  if (n == 0 || n > kMaxQueueBatch) {
    return InvalidArgumentError(std::string(what) + " must hold 1.." + std::to_string(kMaxQueueBatch) +
                                " messages, not " + std::to_string(n));
  }
  return Status::Ok();
}
// kInvalidArgument when a body is larger than kMaxQueueMessageBytes; `what` names it.
inline Status CheckQueueMessageSize(std::size_t bytes, std::string_view what) {
  if (bytes > kMaxQueueMessageBytes) {
    return InvalidArgumentError(std::string(what) + " of " + std::to_string(bytes) + " bytes is larger than the " +
                                std::to_string(kMaxQueueMessageBytes) + " bytes a queue message may hold");
  }
  return Status::Ok();
}
// The checks of a SendBatch (Send is a batch of one): its size, then every body's.
inline Status CheckQueueBodies(const std::vector<std::string>& bodies) {
  PWRCELL_RETURN_IF_ERROR(CheckQueueBatchSize(bodies.size(), "a batch"));
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    PWRCELL_RETURN_IF_ERROR(CheckQueueMessageSize(
        bodies[i].size(),
        bodies.size() == 1 ? std::string("a message body") : "message body " + std::to_string(i) + " of the batch"));
  }
  return Status::Ok();
}
// kInvalidArgument unless 0 <= timeout <= kMaxVisibilityTimeout.
inline Status CheckVisibilityTimeout(Duration timeout) {
  if (timeout < Duration::zero() || timeout > kMaxVisibilityTimeout) {
    return InvalidArgumentError("visibility timeout of " + std::to_string(timeout.count()) + " ms is outside 0..12 h");
  }
  return Status::Ok();
}

class Queue {
 public:
  virtual ~Queue() = default;

  // Durably stores one message; when this returns OK the message survives a crash. A body above
  // kMaxQueueMessageBytes is kInvalidArgument (CheckQueueBodies), as for SendBatch.
  virtual Result<std::string> Send(const std::string& body) = 0;

  // Stores up to kMaxQueueBatch messages atomically; returns their ids in order. kInvalidArgument,
  // storing nothing, for a batch size outside 1..kMaxQueueBatch or a body above
  // kMaxQueueMessageBytes (CheckQueueBodies).
  virtual Result<std::vector<std::string>> SendBatch(const std::vector<std::string>& bodies) = 0;

  // Up to `max_messages` (1..kMaxQueueBatch) visible messages, oldest first, each hidden for
  // `visibility_timeout`. An empty vector when none is visible (never blocks).
  virtual Result<std::vector<ReceivedMessage>> Receive(std::size_t max_messages, Duration visibility_timeout) = 0;

  // Acknowledges a delivery: the message is gone for good.
  virtual Status Delete(const std::string& receipt) = 0;

  // Moves an in-flight message to the dead-letter store at once (a permanent failure: retrying
  // cannot help). Same receipt rules as Delete.
  virtual Status DeadLetter(const std::string& receipt) = 0;

  // Makes an in-flight message visible again after `timeout` (0: now). Used for backoff.
  virtual Status ChangeVisibility(const std::string& receipt, Duration timeout) = 0;

  virtual Result<QueueStats> Stats() = 0;

  // Up to `max_messages` dead-lettered messages, oldest first (for operators; not removed).
  virtual Result<std::vector<ReceivedMessage>> PeekDeadLetters(std::size_t max_messages) = 0;

  // Moves up to `max_messages` (>= 1; no upper limit) dead letters back into the queue, oldest
  // dead-lettering first (PeekDeadLetters' order), and returns how many moved: 0 when the
  // dead-letter store is empty. Each comes back as a new message, as SQS's redrive does: a new
  // id (so no receipt of its earlier deliveries can touch it), visible now, receive_count 0
  // (it gets max_receives deliveries again), sent_at now, queued behind the messages already
  // waiting. All or nothing: on an error none has moved. For operators, once the cause of the
  // failures is fixed. Errors: kInvalidArgument for max_messages 0; kUnavailable.
  virtual Result<std::size_t> RedriveDeadLetters(std::size_t max_messages) = 0;
};

}  // namespace pwrcell::ports
