// Durable queues in a SQLite file, with the SQS semantics of ports::Queue: the embedded
// default of `serve`. Every named queue of a file shares one table:
//
//   queue_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, body BLOB NOT NULL,
//                  sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
//                  receive_count INTEGER NOT NULL, dead INTEGER NOT NULL, dead_at INTEGER)
//   index queue_messages_ready(queue, dead, visible_at, id)
//
// Times are Unix milliseconds from the injected clock. Dead letters stay in the table with
// dead = 1 (the queue's dead-letter store), so an operator can inspect and redrive them.
// A receipt is "<id>:<receive_count>": a Delete or ChangeVisibility with the receipt of an
// earlier delivery matches no row and leaves the redelivered message alone.
#pragma once

#include <memory>
#include <string>
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
  SqliteQueue(std::shared_ptr<SqliteDatabase> database, std::string name, const ports::Clock& clock, int max_receives)
      : database_(std::move(database)), name_(std::move(name)), clock_(clock), max_receives_(max_receives) {}

  std::shared_ptr<SqliteDatabase> database_;
  const std::string name_;
  const ports::Clock& clock_;
  const int max_receives_;
};

}  // namespace pwrcell::adapters
