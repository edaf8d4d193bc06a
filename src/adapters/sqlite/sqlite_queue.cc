#include "adapters/sqlite/sqlite_queue.h"

#include <spdlog/spdlog.h>

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
  dead_at INTEGER,
  leased INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_messages_by_ready ON queue_messages (queue, id) WHERE dead = 0 AND leased = 0;
-- dead and leased ride along so that Stats' count of run-out leases reads the index alone.
CREATE INDEX IF NOT EXISTS queue_messages_by_lease ON queue_messages (queue, visible_at, dead, leased)
  WHERE dead = 0 AND leased = 1;
CREATE INDEX IF NOT EXISTS queue_messages_by_dead ON queue_messages (queue, dead_at, id) WHERE dead = 1;
CREATE TABLE IF NOT EXISTS queue_counts (
  queue TEXT PRIMARY KEY,
  ready INTEGER NOT NULL DEFAULT 0,
  leased INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0
);
)sql";

// Version 1 and 2 files (the same queue table: no leased column, one index on
// (queue, dead, visible_at, id) that Receive had to sort from) -> version 3. A delivered live
// message (receive_count > 0) becomes a lease with its visible_at, whether or not it has
// expired (the next Receive promotes the expired ones); a never-delivered or redriven one is
// ready. The counts are taken once here; every statement that changes a message's state keeps
// them from then on. O(rows), once, inside EnsureSchema's transaction.
Status MigrateToVersion3(SqliteSession& session) {
  return session.Exec(R"sql(
DROP INDEX IF EXISTS queue_messages_ready;
ALTER TABLE queue_messages ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;
UPDATE queue_messages SET leased = 1 WHERE dead = 0 AND receive_count > 0;
CREATE TABLE queue_counts (
  queue TEXT PRIMARY KEY,
  ready INTEGER NOT NULL DEFAULT 0,
  leased INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0
);
INSERT INTO queue_counts (queue, ready, leased, dead)
  SELECT queue, SUM(dead = 0 AND leased = 0), SUM(dead = 0 AND leased = 1), SUM(dead = 1)
  FROM queue_messages GROUP BY queue;
)sql");
}

const SqliteSchema& QueueSchema() {
  static const SqliteSchema schema{
      .component = "queues",
      .table = "queue_messages",
      .ddl = kSchema,
      .migrations = {{.version = 3, .apply = MigrateToVersion3}},
  };
  return schema;
}

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

// How one operation changes the queue's counts (queue_counts), added in the operation's own
// transaction, so that the counts always equal the rows.
struct CountsDelta {
  std::int64_t ready = 0;
  std::int64_t leased = 0;
  std::int64_t dead = 0;
};

Status AddToCounts(SqliteSession& session, const std::string& queue, const CountsDelta& delta) {
  if (delta.ready == 0 && delta.leased == 0 && delta.dead == 0) return Status::Ok();
  // An upsert: a queue's row is made by its first message.
  auto add = session.Prepare(
      "INSERT INTO queue_counts (queue, ready, leased, dead) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT (queue) DO UPDATE SET "
      "ready = ready + excluded.ready, leased = leased + excluded.leased, dead = dead + excluded.dead");
  if (!add.ok()) return add.status();
  add->BindText(1, queue).BindInt64(2, delta.ready).BindInt64(3, delta.leased).BindInt64(4, delta.dead);
  return add->Run();
}

// The state of the live message a receipt names: leased (true) or ready (false); nullopt when the
// receipt is not the latest delivery of a live message of `queue`.
Result<std::optional<bool>> LiveMessageIsLeased(SqliteSession& session, const std::string& queue,
                                                const Receipt& receipt) {
  auto query = session.Prepare(
      "SELECT leased FROM queue_messages WHERE id = ?1 AND queue = ?2 AND receive_count = ?3 AND dead = 0");
  if (!query.ok()) return query.status();
  query->BindInt64(1, receipt.id).BindText(2, queue).BindInt64(3, receipt.receive_count);
  auto row = query->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<bool>();
  return std::optional<bool>(query->ColumnInt64(0) != 0);
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
  PWRCELL_RETURN_IF_ERROR(database->EnsureSchema(QueueSchema()).WithContext("queue table in " + database->Path()));
  return std::unique_ptr<SqliteQueue>(new SqliteQueue(std::move(database), std::move(name), clock, max_receives));
}

Result<std::string> SqliteQueue::Send(const std::string& body) {
  auto ids = SendBatch({body});
  if (!ids.ok()) return ids.status();
  return std::move(ids->front());
}

Result<std::vector<std::string>> SqliteQueue::SendBatch(const std::vector<std::string>& bodies) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckQueueBodies(bodies));
  const std::int64_t now = ToUnixMillis(clock_.Now());
  auto session = database_->Lock();
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status();
  std::vector<std::string> ids;
  ids.reserve(bodies.size());
  {
    auto insert = session.Prepare(
        "INSERT INTO queue_messages (queue, body, sent_at, visible_at, receive_count, dead, leased) "
        "VALUES (?1, ?2, ?3, ?3, 0, 0, 0)");
    if (!insert.ok()) return insert.status();
    for (const auto& body : bodies) {
      insert->BindText(1, name_).BindBlob(2, body).BindInt64(3, now);
      PWRCELL_RETURN_IF_ERROR(insert->Run().WithContext("sending to queue " + name_));
      insert->Reset();
      ids.push_back(std::to_string(session.LastInsertRowId()));
    }
  }
  PWRCELL_RETURN_IF_ERROR(AddToCounts(session, name_, {.ready = static_cast<std::int64_t>(bodies.size())})
                              .WithContext("sending to queue " + name_));
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
  std::vector<std::string> buried;  // ids dead-lettered by this receive, logged after the commit
  CountsDelta counts;
  {
    // Every lease that has run out is ready again before the oldest ready messages are chosen,
    // so that "oldest first" holds over all visible messages. Each lease is promoted once, so
    // this costs O(log n) per delivery that expired, not per message waiting.
    auto promote = session.Prepare(kPromoteExpiredLeasesQuery);
    if (!promote.ok()) return promote.status();
    promote->BindText(1, name_).BindInt64(2, now);
    PWRCELL_RETURN_IF_ERROR(promote->Run().WithContext("receiving from queue " + name_));
    counts.ready += session.Changes();
    counts.leased -= session.Changes();
  }
  {
    auto select = session.Prepare(kReceiveQuery);
    auto deliver = session.Prepare(
        "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?2, leased = 1 WHERE id = ?1");
    auto bury = session.Prepare("UPDATE queue_messages SET dead = 1, dead_at = ?2, leased = 0 WHERE id = ?1");
    for (const auto* s : {&select, &deliver, &bury}) {
      if (!s->ok()) return s->status();
    }
    std::int64_t after_id = 0;
    // Dead-lettering a candidate frees its place in the batch, so look further until the batch
    // is full or no visible message is left (the memory queue does the same).
    while (received.size() < max_messages) {
      const std::size_t wanted = max_messages - received.size();
      std::vector<std::pair<std::int64_t, ports::ReceivedMessage>> candidates;
      select->BindText(1, name_).BindInt64(2, after_id).BindInt64(3, static_cast<std::int64_t>(wanted));
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
          counts.ready -= 1;
          counts.dead += 1;
          buried.push_back(m.id);
          continue;
        }
        deliver->BindInt64(1, id).BindInt64(2, hidden_until);
        PWRCELL_RETURN_IF_ERROR(deliver->Run().WithContext("receiving from queue " + name_));
        deliver->Reset();
        counts.ready -= 1;
        counts.leased += 1;
        m.receive_count += 1;
        m.receipt = m.id + ":" + std::to_string(m.receive_count);
        received.push_back(std::move(m));
      }
      if (candidates.size() < wanted) break;
    }
  }
  PWRCELL_RETURN_IF_ERROR(AddToCounts(session, name_, counts).WithContext("receiving from queue " + name_));
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("receiving from queue " + name_));
  // A worker that fails a message's last delivery dead-letters it itself and says why; these ran
  // out of deliveries with no answer at all (their worker was killed, or slower than the
  // visibility timeout), so the queue is the only one that can say it.
  for (const std::string& id : buried) {
    spdlog::warn(
        "queue {}: message {} dead-lettered: its {} deliveries ran out with no answer (a worker stopped "
        "or took longer than the visibility timeout); `queues redrive {}` sends it back",
        name_, id, max_receives_, name_);
  }
  return received;
}

Status SqliteQueue::Delete(const std::string& receipt) {
  return Settle(receipt, Settlement::kDelete, 0);
}

Status SqliteQueue::DeadLetter(const std::string& receipt) {
  return Settle(receipt, Settlement::kDeadLetter, ToUnixMillis(clock_.Now()));
}

Status SqliteQueue::ChangeVisibility(const std::string& receipt, Duration timeout) {
  PWRCELL_RETURN_IF_ERROR(ports::CheckVisibilityTimeout(timeout));
  return Settle(receipt, Settlement::kLease, ToUnixMillis(clock_.Now()) + timeout.count());
}

Status SqliteQueue::Settle(const std::string& receipt, Settlement settlement, std::int64_t at) {
  const auto parsed = ParseReceipt(receipt);
  if (!parsed) return InvalidArgumentError("malformed receipt '" + receipt + "'");
  std::string context;
  std::string_view sql;
  CountsDelta counts;
  switch (settlement) {
    case Settlement::kDelete:
      context = "deleting from queue " + name_;
      sql = "DELETE FROM queue_messages WHERE id = ?1";
      break;
    case Settlement::kDeadLetter:
      context = "dead-lettering in queue " + name_;
      sql = "UPDATE queue_messages SET dead = 1, dead_at = ?2, leased = 0 WHERE id = ?1";
      counts.dead = 1;
      break;
    case Settlement::kLease:
      context = "changing visibility in queue " + name_;
      sql = "UPDATE queue_messages SET visible_at = ?2, leased = 1 WHERE id = ?1";
      counts.leased = 1;
      break;
  }
  auto session = database_->Lock();
  // IMMEDIATE: the state read is the state changed, also against another process.
  auto transaction = session.BeginImmediate();
  if (!transaction.ok()) return transaction.status().WithContext(context);
  auto leased = LiveMessageIsLeased(session, name_, *parsed);
  if (!leased.ok()) return leased.status().WithContext(context);
  if (!leased->has_value()) {
    return NotFoundError("receipt " + receipt + " is not the latest delivery of a message in queue " + name_);
  }
  (**leased ? counts.leased : counts.ready) -= 1;
  {
    auto change = session.Prepare(sql);
    if (!change.ok()) return change.status();
    change->BindInt64(1, parsed->id);
    if (settlement != Settlement::kDelete) change->BindInt64(2, at);
    PWRCELL_RETURN_IF_ERROR(change->Run().WithContext(context));
  }
  PWRCELL_RETURN_IF_ERROR(AddToCounts(session, name_, counts).WithContext(context));
  return transaction->Commit().WithContext(context);
}

Result<ports::QueueStats> SqliteQueue::Stats() {
  const std::int64_t now = ToUnixMillis(clock_.Now());
  auto session = database_->Lock();
  auto query = session.Prepare(kStatsQuery);
  if (!query.ok()) return query.status();
  query->BindText(1, name_).BindInt64(2, now);
  auto row = query->Step();
  if (!row.ok()) return row.status().WithContext("counting queue " + name_);
  ports::QueueStats stats;
  if (*row) {  // no row: nothing was ever sent to this queue
    const std::int64_t ready = query->ColumnInt64(0);
    const std::int64_t leased = query->ColumnInt64(1);
    const std::int64_t expired = query->ColumnInt64(3);  // leases run out, not yet promoted
    // The counts equal the rows (tests/conformance/sqlite_queue_test.cc checks it); a file edited
    // by hand must still not show a negative count as 2^64 on /metrics.
    auto count = [](std::int64_t n) { return static_cast<std::size_t>(std::max<std::int64_t>(n, 0)); };
    stats.visible = count(ready + expired);
    stats.in_flight = count(leased - expired);
    stats.dead_letter = count(query->ColumnInt64(2));
  }
  return stats;
}

Result<std::vector<ports::ReceivedMessage>> SqliteQueue::PeekDeadLetters(std::size_t max_messages) {
  if (max_messages == 0) return InvalidArgumentError("PeekDeadLetters needs max_messages >= 1");
  auto session = database_->Lock();
  auto query = session.Prepare(kPeekDeadLettersQuery);
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
    auto select = session.Prepare(kRedriveQuery);
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
        "INSERT INTO queue_messages (queue, body, sent_at, visible_at, receive_count, dead, leased) "
        "SELECT queue, body, ?2, ?2, 0, 0, 0 FROM queue_messages WHERE id = ?1");
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
  const auto moved = static_cast<std::int64_t>(ids.size());
  PWRCELL_RETURN_IF_ERROR(AddToCounts(session, name_, {.ready = moved, .dead = -moved})
                              .WithContext("redriving dead letters of queue " + name_));
  PWRCELL_RETURN_IF_ERROR(transaction->Commit().WithContext("redriving dead letters of queue " + name_));
  return ids.size();
}

}  // namespace pwrcell::adapters
