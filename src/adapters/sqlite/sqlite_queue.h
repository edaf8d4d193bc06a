// Durable queues in a SQLite file, with the SQS semantics of ports::Queue: the embedded
// default of `serve`. Every named queue of a file shares one table:
//
//   queue_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body BLOB NOT NULL,
//                  sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
//                  receive_count INTEGER NOT NULL, dead INTEGER NOT NULL, dead_at INTEGER,
//                  leased INTEGER NOT NULL)
//   index queue_messages_by_ready(queue, id) WHERE dead = 0 AND leased = 0
//   index queue_messages_by_lease(queue, visible_at, dead, leased) WHERE dead = 0 AND leased = 1
//   index queue_messages_by_dead(queue, dead_at, id) WHERE dead = 1
//   queue_counts(queue TEXT PRIMARY KEY, ready, leased, dead), changed in the transaction of every
//                operation that moves a message between the states
//
// Times are Unix milliseconds from the injected clock. A live message is either ready (leased =
// 0: visible; never delivered, redriven, or its lease has been promoted) or leased (leased = 1:
// delivered or given a visibility timeout, hidden until visible_at). Dead letters stay in the
// table with dead = 1 (the queue's dead-letter store), so an operator can inspect and redrive
// them. A receipt is "<id>:<receive_count>": a Delete or ChangeVisibility with the receipt of an
// earlier delivery matches no row and leaves the redelivered message alone.
//
// Why two states rather than one visible_at range: "oldest first" (the port) is the smallest ids
// among the messages whose visible_at has passed, a two-sided question that no single B-tree
// answers without collecting and sorting every visible message (what schema version 2 did: each
// Receive cost O(backlog)). Receive instead first promotes the leases that have run out (a range
// of queue_messages_by_lease, each lease promoted once) and then reads the ready messages in id
// order (queue_messages_by_ready, no sort): O(log n) per message received, deleted, extended or
// dead-lettered, however many wait. Stats() reads the counts row and counts only the leases that
// have run out and no Receive has promoted yet (a covering range of queue_messages_by_lease), so
// it does not grow with the backlog either. The query plans are checked by
// tests/conformance/sqlite_queue_test.cc.
//
// Schema version 3 (sqlite_database.h, component "queues"). A file of version 1 or 2 is migrated
// when a queue opens it: the old index is dropped, leased is derived from receive_count and the
// counts are taken, in one transaction.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/sqlite/sqlite_database.h"
#include "ports/clock.h"
#include "ports/queue.h"

namespace pwrcell::adapters {

// Thread-safe; several processes may open the same file and queue (Receive is one BEGIN
// IMMEDIATE transaction, so two consumers never get the same delivery). `clock` must outlive
// the queue.
//
// Errors are those of ports::Queue: kUnavailable when the file is busy beyond the busy
// timeout or cannot be written (retry); kInvalidArgument for a batch size outside
// 1..kMaxQueueBatch, a visibility timeout outside 0..kMaxVisibilityTimeout or a malformed
// receipt; kNotFound for a receipt that is not the latest delivery of a live message.
class SqliteQueue final : public ports::Queue {
 public:
  // The statements whose cost must not grow with the backlog, exposed so that a test can check
  // their query plans. ?1 is the queue's name.
  // Receive, step 1: leases that have run out by ?2 become ready.
  static constexpr std::string_view kPromoteExpiredLeasesQuery =
      "UPDATE queue_messages SET leased = 0 WHERE queue = ?1 AND dead = 0 AND leased = 1 AND visible_at <= ?2";
  // Receive, step 2: the oldest ?3 ready messages with an id above ?2.
  static constexpr std::string_view kReceiveQuery =
      "SELECT id, body, sent_at, receive_count FROM queue_messages "
      "WHERE queue = ?1 AND dead = 0 AND leased = 0 AND id > ?2 ORDER BY id LIMIT ?3";
  // Stats: ready, leased and dead from the counts, and the leases run out by ?2.
  static constexpr std::string_view kStatsQuery =
      "SELECT ready, leased, dead, (SELECT COUNT(*) FROM queue_messages "
      "WHERE queue = ?1 AND dead = 0 AND leased = 1 AND visible_at <= ?2) FROM queue_counts WHERE queue = ?1";
  // PeekDeadLetters and RedriveDeadLetters: the oldest ?2 dead letters.
  static constexpr std::string_view kPeekDeadLettersQuery =
      "SELECT id, body, sent_at, receive_count FROM queue_messages "
      "WHERE queue = ?1 AND dead = 1 ORDER BY dead_at, id LIMIT ?2";
  static constexpr std::string_view kRedriveQuery =
      "SELECT id FROM queue_messages WHERE queue = ?1 AND dead = 1 ORDER BY dead_at, id LIMIT ?2";

  // Opens (creating if absent) the file at `path` and the queue `name` in it. `max_receives`
  // >= 1 is how many deliveries a message gets before its next receive dead-letters it.
  // Errors: kInvalidArgument for an empty name or max_receives < 1; those of
  // SqliteDatabase::Open and EnsureSchema.
  static Result<std::unique_ptr<SqliteQueue>> Open(const std::string& path, std::string name, const ports::Clock& clock,
                                                   int max_receives);
  // The queue `name` in an already open database (shared with the device table and other queues).
  static Result<std::unique_ptr<SqliteQueue>> Create(std::shared_ptr<SqliteDatabase> database, std::string name,
                                                     const ports::Clock& clock, int max_receives);

  Result<std::string> Send(const std::string& body) override;
  Result<std::vector<std::string>> SendBatch(const std::vector<std::string>& bodies) override;
  Result<std::vector<ports::ReceivedMessage>> Receive(std::size_t max_messages, Duration visibility_timeout) override;
  Status Delete(const std::string& receipt) override;
  Status DeadLetter(const std::string& receipt) override;
  Status ChangeVisibility(const std::string& receipt, Duration timeout) override;
  Result<ports::QueueStats> Stats() override;
  // Oldest dead-lettering first; receipts are empty (dead letters cannot be deleted here).
  Result<std::vector<ports::ReceivedMessage>> PeekDeadLetters(std::size_t max_messages) override;
  // One BEGIN IMMEDIATE transaction: each dead row is copied into a new row (AUTOINCREMENT: an
  // id above every id ever used, so it queues last) and deleted.
  Result<std::size_t> RedriveDeadLetters(std::size_t max_messages) override;

 private:
  // What Delete, DeadLetter and ChangeVisibility do to the live message their receipt names.
  enum class Settlement { kDelete, kDeadLetter, kLease };

  SqliteQueue(std::shared_ptr<SqliteDatabase> database, std::string name, const ports::Clock& clock, int max_receives)
      : database_(std::move(database)), name_(std::move(name)), clock_(clock), max_receives_(max_receives) {}

  std::shared_ptr<SqliteDatabase> database_;
  const std::string name_;
  // Applies `settlement` (at: dead_at for kDeadLetter, the new visible_at for kLease) and the
  // counts, in one transaction. Errors: kInvalidArgument for a malformed receipt, kNotFound when it
  // is not the latest delivery of a live message, kUnavailable.
  Status Settle(const std::string& receipt, Settlement settlement, std::int64_t at);

  const ports::Clock& clock_;
  const int max_receives_;
};

}  // namespace pwrcell::adapters
