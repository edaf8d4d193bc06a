// An in-memory Queue with the same SQS semantics as the SQLite queue: the reference backend of
// the conformance suite and the queue of unit tests. Not durable.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ports/clock.h"
#include "ports/queue.h"

namespace pwrcell::adapters {

// Thread-safe (one mutex). Visibility is judged by `clock`, which must outlive the queue.
// Message ids count up from 1; a receipt is "<id>:<receive_count>" so that the receipt of an
// older delivery cannot touch a redelivered message.
//
// Errors are those of ports::Queue: kInvalidArgument for a batch size outside
// 1..kMaxQueueBatch or a visibility timeout outside 0..kMaxVisibilityTimeout or a malformed
// receipt; kNotFound for a receipt that is not the latest delivery of a live message. Never
// kUnavailable.
class MemoryQueue final : public ports::Queue {
 public:
  // `max_receives` >= 1: deliveries before a message is dead-lettered on its next receive.
  MemoryQueue(const ports::Clock& clock, int max_receives);

  Result<std::string> Send(const std::string& body) override;
  Result<std::vector<std::string>> SendBatch(const std::vector<std::string>& bodies) override;
  Result<std::vector<ports::ReceivedMessage>> Receive(std::size_t max_messages, Duration visibility_timeout) override;
  Status Delete(const std::string& receipt) override;
  Status DeadLetter(const std::string& receipt) override;
  Status ChangeVisibility(const std::string& receipt, Duration timeout) override;
  Result<ports::QueueStats> Stats() override;
  // Oldest dead-lettering first; receipts are empty (dead letters cannot be deleted here).
  Result<std::vector<ports::ReceivedMessage>> PeekDeadLetters(std::size_t max_messages) override;
  // Re-keys each moved message under a new id (the next of next_id_), so it is received after
  // everything already queued.
  Result<std::size_t> RedriveDeadLetters(std::size_t max_messages) override;

 private:
  struct Message {
    std::string body;
    Timestamp sent_at;
    Timestamp visible_at;
    int receive_count = 0;
    bool dead = false;
    Timestamp dead_at;
  };

  // The live message `receipt` names, or the error to return. Requires mutex_.
  Result<Message*> FindByReceipt(const std::string& receipt);
  // Ids of up to `max` dead letters, oldest dead-lettering first. Requires mutex_.
  std::vector<std::int64_t> OldestDeadLetters(std::size_t max) const;

  const ports::Clock& clock_;
  const int max_receives_;
  std::mutex mutex_;
  std::int64_t next_id_ = 1;
  std::map<std::int64_t, Message> messages_;  // by id = send order, which Receive hands out first
};

}  // namespace pwrcell::adapters
