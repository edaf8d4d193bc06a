#include "adapters/sqlite/sqlite_queue.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

namespace pwrcell::adapters {
namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS queue_messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  body BLOB NOT NULL,
  sent_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  dead_at INTEGER
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, dead, visible_at, id);
)sql";

struct Receipt {
  std::int64_t id = 0;
  std::int64_t receive_count = 0;
};

// "<id>:<receive_count>"; nullopt when malformed.
std::optional<Receipt> ParseReceipt(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  Receipt r;
  const char* id_end = text.data() + colon;
  const char* end = text.data() + text.size();
  auto [p1, e1] = std::from_chars(text.data(), id_end, r.id);
  if (e1 != std::errc() || p1 != id_end || r.id < 1) return std::nullopt;
  auto [p2, e2] = std::from_chars(id_end + 1, end, r.receive_count);
  if (e2 != std::errc() || p2 != end || r.receive_count < 1) return std::nullopt;
  return r;
}

// A row of (id, body, sent_at, receive_count) as a message; `receipt` for live deliveries.
ports::ReceivedMessage MessageFromRow(const SqliteStatement& row) {
  ports::ReceivedMessage m;
  m.id = std::to_string(row.ColumnInt64(0));
  m.body = row.ColumnBlob(1);
  m.sent_at = FromUnixMillis(row.ColumnInt64(2));
  m.receive_count = static_cast<int>(row.ColumnInt64(3));
  return m;
}

}  // namespace

Result<std::unique_ptr<SqliteQueue>> SqliteQueue::Open(const std::string& path, std::string name,
                                                       const ports::Clock& clock, int max_receives) {
  auto database = SqliteDatabase::Open(path);
  if (!database.ok()) return database.status();
  return Create(std::move(database).value(), std::move(name), clock, max_receives);
}

Result<std::unique_ptr<SqliteQueue>> SqliteQueue::Create(std::shared_ptr<SqliteDatabase> database, std::string name,
                                                         const ports::Clock& clock, int max_receives) {
  if (name.empty()) return InvalidArgumentError("a queue needs a name");
  if (max_receives < 1) return InvalidArgumentError("queue " + name + ": max_receives must be at least 1");
  PWRCELL_RETURN_IF_ERROR(database->EnsureSchema(kSchema).WithContext("queue table in " + database->Path()));
  return std::unique_ptr<SqliteQueue>(new SqliteQueue(std::move(database), std::move(name), clock, max_receives));
}

Result<std::string> SqliteQueue::Send(const std::string& body) {
  auto ids = SendBatch({body});
  if (!ids.ok()) return ids.status();
  return std::move(ids->front());
}

Result<std::vector<std::string>> SqliteQueue::SendBatch(const std::vector<std::string>& bodies) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBatchSize(bodies.size(), "a batch"));
  const std::int64_t now = ToUnixMillis(clock_.Now());
  auto session = database_->Lock();
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  std::vector<std::string> ids;
  ids.reserve(bodies.size());
  {
    auto insert = session.Prepare(
        "INSERT INTO queue_messages (queue, body, sent_at, visible_at, receive_count, dead) "
        "VALUES (?1, ?2, ?3, ?3, 0, 0)");
    if (!insert.ok()) return insert.status();
    for (const auto& body : bodies) {
      insert->BindText(1, name_).BindBlob(2, body).BindInt64(3, now);
      PWRCELL_RETURN_IF_ERROR(insert->Run().WithContext("sending to queue " + name_));
      insert->Reset();
      ids.push_back(std::to_string(session.LastInsertRowId()));
    }
  }
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("sending to queue " + name_));
  return ids;
}

Result<std::vector<ports::ReceivedMessage>> SqliteQueue::Receive(std::size_t max_messages,
                                                                 Duration visibility_timeout) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBatchSize(max_messages, "a receive"));
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(visibility_timeout));
  const std::int64_t now = ToUnixMillis(clock_.Now());
  const std::int64_t hidden_until = now + visibility_timeout.count();

  auto session = database_->Lock();
  // IMMEDIATE: the select and the updates below must see and claim the same rows, also against
  // another process receiving from this file.
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  std::vector<ports::ReceivedMessage> received;
  {
    auto select = session.Prepare(
        "SELECT id, body, sent_at, receive_count FROM queue_messages "
        "WHERE queue = ?1 AND dead = 0 AND visible_at <= ?2 AND id > ?3 ORDER BY id LIMIT ?4");
    auto deliver =
        session.Prepare("UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?2 WHERE id = ?1");
    auto bury = session.Prepare("UPDATE queue_messages SET dead = 1, dead_at = ?2 WHERE id = ?1");
    for (const auto* s : {&select, &deliver, &bury}) {
      if (!s->ok()) return s->status();
    }
    std::int64_t after_id = 0;
    // Dead-lettering a candidate frees its place in the batch, so look further until the batch
    // is full or no visible message is left (the memory queue does the same).
    while (received.size() < max_messages) {
      const std::size_t wanted = max_messages - received.size();
      std::vector<std::pair<std::int64_t, ports::ReceivedMessage>> candidates;
      select->BindText(1, name_)
          .BindInt64(2, now)
          .BindInt64(3, after_id)
          .BindInt64(4, static_cast<std::int64_t>(wanted));
      while (true) {
        auto row = select->Step();
        if (!row.ok()) return row.status().WithContext("receiving from queue " + name_);
        if (!*row) break;
        candidates.emplace_back(select->ColumnInt64(0), MessageFromRow(*select));
      }
      // Rows are updated only after the select has finished with them.
      select->Reset();
      for (auto& [id, m] : candidates) {
        after_id = id;
        if (m.receive_count >= max_receives_) {
          bury->BindInt64(1, id).BindInt64(2, now);
          PWRCELL_RETURN_IF_ERROR(bury->Run().WithContext("dead-lettering in queue " + name_));
          bury->Reset();
          continue;
        }
        deliver->BindInt64(1, id).BindInt64(2, hidden_until);
        PWRCELL_RETURN_IF_ERROR(deliver->Run().WithContext("receiving from queue " + name_));
        deliver->Reset();
        m.receive_count += 1;
        m.receipt = m.id + ":" + std::to_string(m.receive_count);
        received.push_back(std::move(m));
      }
      if (candidates.size() < wanted) break;
    }
  }
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("receiving from queue " + name_));
  return received;
}

Status SqliteQueue::Delete(const std::string& receipt) {
  const auto parsed = ParseReceipt(receipt);
  if (!parsed) return InvalidArgumentError("malformed receipt '" + receipt + "'");
  auto session = database_->Lock();
  {
    auto remove =
        session.Prepare("DELETE FROM queue_messages WHERE id = ?1 AND queue = ?2 AND receive_count = ?3 AND dead = 0");
    if (!remove.ok()) return remove.status();
    remove->BindInt64(1, parsed->id).BindText(2, name_).BindInt64(3, parsed->receive_count);
    PWRCELL_RETURN_IF_ERROR(remove->Run().WithContext("deleting from queue " + name_));
  }
  if (session.Changes() == 0) {
    return NotFoundError("receipt " + receipt + " is not the latest delivery of a message in queue " + name_);
  }
  return Status::Ok();
}

Status SqliteQueue::DeadLetter(const std::string& receipt) {
  const auto parsed = ParseReceipt(receipt);
  if (!parsed) return InvalidArgumentError("malformed receipt '" + receipt + "'");
  const std::int64_t now = ToUnixMillis(clock_.Now());
  auto session = database_->Lock();
  {
    auto bury = session.Prepare(
        "UPDATE queue_messages SET dead = 1, dead_at = ?4 "
        "WHERE id = ?1 AND queue = ?2 AND receive_count = ?3 AND dead = 0");
    if (!bury.ok()) return bury.status();
    bury->BindInt64(1, parsed->id).BindText(2, name_).BindInt64(3, parsed->receive_count).BindInt64(4, now);
    PWRCELL_RETURN_IF_ERROR(bury->Run().WithContext("dead-lettering in queue " + name_));
  }
  if (session.Changes() == 0) {
    return NotFoundError("receipt " + receipt + " is not the latest delivery of a message in queue " + name_);
  }
  return Status::Ok();
}

Status SqliteQueue::ChangeVisibility(const std::string& receipt, Duration timeout) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(timeout));
  const auto parsed = ParseReceipt(receipt);
  if (!parsed) return InvalidArgumentError("malformed receipt '" + receipt + "'");
  const std::int64_t visible_at = ToUnixMillis(clock_.Now()) + timeout.count();
  auto session = database_->Lock();
  {
    auto update = session.Prepare(
        "UPDATE queue_messages SET visible_at = ?4 "
        "WHERE id = ?1 AND queue = ?2 AND receive_count = ?3 AND dead = 0");
    if (!update.ok()) return update.status();
    update->BindInt64(1, parsed->id).BindText(2, name_).BindInt64(3, parsed->receive_count).BindInt64(4, visible_at);
    PWRCELL_RETURN_IF_ERROR(update->Run().WithContext("changing visibility in queue " + name_));
  }
  if (session.Changes() == 0) {
    return NotFoundError("receipt " + receipt + " is not the latest delivery of a message in queue " + name_);
  }
  return Status::Ok();
}

Result<ports::QueueStats> SqliteQueue::Stats() {
  const std::int64_t now = ToUnixMillis(clock_.Now());
  auto session = database_->Lock();
  auto query = session.Prepare(
      "SELECT TOTAL(dead = 0 AND visible_at <= ?2), TOTAL(dead = 0 AND visible_at > ?2), TOTAL(dead <> 0) "
      "FROM queue_messages WHERE queue = ?1");
  if (!query.ok()) return query.status();
  query->BindText(1, name_).BindInt64(2, now);
  auto row = query->Step();
  if (!row.ok()) return row.status().WithContext("counting queue " + name_);
  ports::QueueStats stats;
  if (*row) {
    stats.visible = static_cast<std::size_t>(query->ColumnInt64(0));
    stats.in_flight = static_cast<std::size_t>(query->ColumnInt64(1));
    stats.dead_letter = static_cast<std::size_t>(query->ColumnInt64(2));
  }
  return stats;
}

Result<std::vector<ports::ReceivedMessage>> SqliteQueue::PeekDeadLetters(std::size_t max_messages) {
  if (max_messages == 0) return InvalidArgumentError("PeekDeadLetters needs max_messages >= 1");
  auto session = database_->Lock();
  auto query = session.Prepare(
      "SELECT id, body, sent_at, receive_count FROM queue_messages "
      "WHERE queue = ?1 AND dead = 1 ORDER BY dead_at, id LIMIT ?2");
  if (!query.ok()) return query.status();
  query->BindText(1, name_).BindInt64(2, static_cast<std::int64_t>(max_messages));
  std::vector<ports::ReceivedMessage> dead;
  while (true) {
    auto row = query->Step();
    if (!row.ok()) return row.status().WithContext("reading dead letters of queue " + name_);
    if (!*row) break;
    dead.push_back(MessageFromRow(*query));
  }
  return dead;
}

Result<std::size_t> SqliteQueue::RedriveDeadLetters(std::size_t max_messages) {
  if (max_messages == 0) return InvalidArgumentError("RedriveDeadLetters needs max_messages >= 1");
  const std::int64_t now = ToUnixMillis(clock_.Now());
  // SQLite's LIMIT is a signed 64-bit integer; "all of them" must not wrap to a negative one.
  const auto limit = static_cast<std::int64_t>(
      std::min<std::uint64_t>(max_messages, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())));
  auto session = database_->Lock();
  // IMMEDIATE: the rows selected are the rows moved, also against serve receiving from this file.
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status().WithContext("redriving dead letters of queue " + name_);
  std::vector<std::int64_t> ids;
  {
    auto select =
        session.Prepare("SELECT id FROM queue_messages WHERE queue = ?1 AND dead = 1 ORDER BY dead_at, id LIMIT ?2");
    if (!select.ok()) return select.status();
    select->BindText(1, name_).BindInt64(2, limit);
    while (true) {
      auto row = select->Step();
      if (!row.ok()) return row.status().WithContext("redriving dead letters of queue " + name_);
      if (!*row) break;
      ids.push_back(select->ColumnInt64(0));
    }
  }
  {
    auto copy = session.Prepare(
        "INSERT INTO queue_messages (queue, body, sent_at, visible_at, receive_count, dead) "
        "SELECT queue, body, ?2, ?2, 0, 0 FROM queue_messages WHERE id = ?1");
    auto remove = session.Prepare("DELETE FROM queue_messages WHERE id = ?1");
    for (const auto* s : {&copy, &remove}) {
      if (!s->ok()) return s->status();
    }
    for (const std::int64_t id : ids) {
      copy->BindInt64(1, id).BindInt64(2, now);
      PWRCELL_RETURN_IF_ERROR(copy->Run().WithContext("redriving dead letters of queue " + name_));
      copy->Reset();
      remove->BindInt64(1, id);
      PWRCELL_RETURN_IF_ERROR(remove->Run().WithContext("redriving dead letters of queue " + name_));
      remove->Reset();
    }
  }
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("redriving dead letters of queue " + name_));
  return ids.size();
}

}  // namespace pwrcell::adapters
