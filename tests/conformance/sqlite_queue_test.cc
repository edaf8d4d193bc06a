// What the SQLite queue promises beyond the port (sqlite_queue.h): the statements of Receive and
// Stats are served by their indexes (no scan, no sort of the backlog), the counts it keeps
// always equal a full count, it answers exactly as the memory queue over a long random run, and a
// file of schema version 2 still opens, migrated.
#include "adapters/sqlite/sqlite_queue.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_queue.h"
#include "adapters/sqlite/sqlite_database.h"
#include "backends.h"

namespace pwrcell::conformance {
namespace {

using adapters::FakeClock;
using adapters::SqliteDatabase;
using adapters::SqliteQueue;
using std::chrono::seconds;

// The rows of `sql` (one text column each), or a test failure.
std::vector<std::string> Texts(SqliteDatabase& database, const std::string& sql, int column = 0) {
  auto session = database.Lock();
  auto query = session.Prepare(sql);
  EXPECT_TRUE(query.ok()) << sql << ": " << query.status().ToString();
  std::vector<std::string> rows;
  if (!query.ok()) return rows;
  while (true) {
    auto row = query->Step();
    EXPECT_TRUE(row.ok()) << sql << ": " << row.status().ToString();
    if (!row.ok() || !*row) break;
    rows.push_back(query->ColumnText(column));
  }
  return rows;
}

std::vector<std::string> QueryPlan(SqliteDatabase& database, std::string_view query) {
  return Texts(database, "EXPLAIN QUERY PLAN " + std::string(query), 3);  // (id, parent, notused, detail)
}

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

bool Contains(const std::vector<std::string>& values, const std::string& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// Every line of `plan` is an index search (no SCAN of a table or index, no TEMP B-TREE for a
// sort), and each of `expected` is part of one of its lines.
void ExpectIndexedPlan(const std::vector<std::string>& plan, const std::vector<std::string>& expected) {
  ASSERT_FALSE(plan.empty());
  for (const auto& line : plan) {
    EXPECT_EQ(line.find("SCAN"), std::string::npos) << Joined(plan);
    EXPECT_EQ(line.find("TEMP B-TREE"), std::string::npos) << Joined(plan);
  }
  for (const auto& part : expected) {
    EXPECT_TRUE(std::any_of(plan.begin(), plan.end(),
                            [&](const std::string& line) { return line.find(part) != std::string::npos; }))
        << "want: " << part << "\n"
        << Joined(plan);
  }
}

class SqliteQueueTable : public ::testing::Test {
 protected:
  std::string Path() const { return (dir_.Path() / "adapter.db").string(); }

  std::shared_ptr<SqliteDatabase> OpenDatabase() {
    auto database = SqliteDatabase::Open(Path());
    EXPECT_TRUE(database.ok()) << database.status().ToString();
    return database.ok() ? *database : nullptr;
  }

  std::unique_ptr<SqliteQueue> OpenQueue(const std::shared_ptr<SqliteDatabase>& database, const std::string& name,
                                         int max_receives = 3) {
    auto queue = SqliteQueue::Create(database, name, clock_, max_receives);
    EXPECT_TRUE(queue.ok()) << queue.status().ToString();
    return queue.ok() ? std::move(queue).value() : nullptr;
  }

  // The counts the queue keeps, and the same counted from the rows, as "queue ready leased dead".
  static std::vector<std::string> KeptCounts(SqliteDatabase& database) {
    return Texts(database,
                 "SELECT queue || ' ' || ready || ' ' || leased || ' ' || dead FROM queue_counts "
                 "WHERE ready + leased + dead > 0 ORDER BY queue");
  }
  static std::vector<std::string> CountedRows(SqliteDatabase& database) {
    return Texts(database,
                 "SELECT queue || ' ' || SUM(dead = 0 AND leased = 0) || ' ' || SUM(dead = 0 AND leased = 1) || ' ' "
                 "|| SUM(dead = 1) FROM queue_messages GROUP BY queue ORDER BY queue");
  }

  // A file exactly as the adapter of schema version 2 left it (the queue table and index have
  // not changed since version 1): user_version 2, the devices component at 2, and in queue 'ces'
  // id 1 delivered twice with its visibility run out, id 2 in flight, id 3 never delivered, id 4
  // dead, id 5 redriven (receive_count 0); id 6 in queue 'other'.
  void WriteVersion2File() {
    auto database = OpenDatabase();
    ASSERT_NE(database, nullptr);
    const std::int64_t now = ToUnixMillis(clock_.Now());
    const std::string past = std::to_string(now - 1000);
    const std::string future = std::to_string(now + 30'000);
    ASSERT_TRUE(database->Lock()
                    .Exec(R"sql(
CREATE TABLE queue_messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  body BLOB NOT NULL,
  sent_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  dead_at INTEGER
);
CREATE INDEX queue_messages_ready ON queue_messages (queue, dead, visible_at, id);
CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO schema_versions VALUES ('devices', 2);
INSERT INTO queue_messages VALUES (1, 'ces', 'expired', 1, )sql" +
                          past + R"sql(, 2, 0, NULL);
INSERT INTO queue_messages VALUES (2, 'ces', 'in flight', 2, )sql" +
                          future + R"sql(, 1, 0, NULL);
INSERT INTO queue_messages VALUES (3, 'ces', 'fresh', 3, 3, 0, 0, NULL);
INSERT INTO queue_messages VALUES (4, 'ces', 'dead', 4, 4, 3, 1, 44);
INSERT INTO queue_messages VALUES (5, 'ces', 'redriven', 5, 5, 0, 0, NULL);
INSERT INTO queue_messages VALUES (6, 'other', 'theirs', 6, 6, 0, 0, NULL);
PRAGMA user_version = 2;
)sql")
                    .ok());
  }

  void ExpectVersion3Shape(SqliteDatabase& database) {
    const std::vector<std::string> current{std::to_string(adapters::kSqliteSchemaVersion)};
    EXPECT_EQ(Texts(database, "PRAGMA user_version"), current);
    EXPECT_EQ(Texts(database, "SELECT version FROM schema_versions WHERE component = 'queues'"), current);
    EXPECT_TRUE(Contains(Texts(database, "SELECT name FROM pragma_table_info('queue_messages')"), "leased"));
    const auto indexes = Texts(database, "SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name");
    for (const char* index : {"queue_messages_by_ready", "queue_messages_by_lease", "queue_messages_by_dead"}) {
      EXPECT_TRUE(Contains(indexes, index)) << index;
    }
    EXPECT_FALSE(Contains(indexes, "queue_messages_ready")) << "the index Receive had to sort from is gone";
  }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(SqliteQueueTable, ReceiveAndStatsAreServedByIndexesWithoutASort) {
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  auto queue = OpenQueue(database, "work");
  auto other = OpenQueue(database, "other");
  ASSERT_TRUE(queue && other);
  // Ready, leased (some run out), dead and another queue's messages.
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(queue->SendBatch(std::vector<std::string>(10, "m" + std::to_string(i))).ok());
    ASSERT_TRUE(other->Send("o").ok());
  }
  auto leased = queue->Receive(10, seconds(60));
  ASSERT_TRUE(leased.ok() && leased->size() == 10);
  auto expiring = queue->Receive(10, seconds(1));
  ASSERT_TRUE(expiring.ok() && expiring->size() == 10);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(queue->DeadLetter((*leased)[i].receipt).ok());
  clock_.Advance(seconds(2));

  // As the planner sees a file that was never analyzed (serve never runs ANALYZE) and one that was.
  for (const bool analyzed : {false, true}) {
    SCOPED_TRACE(analyzed ? "after ANALYZE" : "without statistics");
    if (analyzed) {
      ASSERT_TRUE(database->Lock().Exec("ANALYZE").ok());
    }
    ExpectIndexedPlan(QueryPlan(*database, SqliteQueue::kReceiveQuery),
                      {"SEARCH queue_messages USING INDEX queue_messages_by_ready (queue=? AND id>?)"});
    ExpectIndexedPlan(QueryPlan(*database, SqliteQueue::kPromoteExpiredLeasesQuery),
                      {"SEARCH queue_messages USING", "INDEX queue_messages_by_lease (queue=? AND visible_at<?)"});
    ExpectIndexedPlan(
        QueryPlan(*database, SqliteQueue::kStatsQuery),
        {"SEARCH queue_counts USING INDEX sqlite_autoindex_queue_counts_1 (queue=?)",
         "SEARCH queue_messages USING COVERING INDEX queue_messages_by_lease (queue=? AND visible_at<?)"});
    for (const auto query : {SqliteQueue::kPeekDeadLettersQuery, SqliteQueue::kRedriveQuery}) {
      ExpectIndexedPlan(QueryPlan(*database, query),
                        {"SEARCH queue_messages USING INDEX queue_messages_by_dead (queue=?)"});
    }
  }

  // And the answers: the ten whose lease ran out come back first (oldest ids), then the ready ones.
  auto stats = queue->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->visible, 290U);  // 280 ready + 10 whose lease ran out
  EXPECT_EQ(stats->in_flight, 7U);
  EXPECT_EQ(stats->dead_letter, 3U);
  auto again = queue->Receive(10, seconds(60));
  ASSERT_TRUE(again.ok() && again->size() == 10);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ((*again)[i].id, (*expiring)[i].id);
  EXPECT_EQ(KeptCounts(*database), CountedRows(*database));
}

// A message whose deliveries all ran out with no answer (its worker was killed) is dead-lettered
// by the next receive, and the queue says so: no worker is left to.
TEST_F(SqliteQueueTable, AMessageWhoseDeliveriesRanOutUnansweredIsDeadLetteredWithALogLine) {
  auto database = OpenDatabase();
  auto queue = OpenQueue(database, "concerto", /*max_receives=*/2);
  ASSERT_NE(queue, nullptr);
  auto sent = queue->Send("point batch");
  ASSERT_TRUE(sent.ok());
  for (int delivery = 0; delivery < 2; ++delivery) {
    auto leased = queue->Receive(1, seconds(1));
    ASSERT_TRUE(leased.ok());
    ASSERT_EQ(leased->size(), 1u);
    clock_.Advance(seconds(2));  // no answer: the lease runs out
  }
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(
      std::make_shared<spdlog::logger>("capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  auto last = queue->Receive(1, seconds(1));
  spdlog::set_default_logger(previous);
  ASSERT_TRUE(last.ok());
  EXPECT_TRUE(last->empty());
  EXPECT_EQ(KeptCounts(*database), (std::vector<std::string>{"concerto 0 0 1"}));
  EXPECT_NE(log.str().find("queue concerto: message " + *sent + " dead-lettered: its 2 deliveries ran out"),
            std::string::npos)
      << log.str();
}

TEST_F(SqliteQueueTable, ANewFileHasTheCurrentShape) {
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  ASSERT_NE(OpenQueue(database, "ces"), nullptr);
  ExpectVersion3Shape(*database);
  EXPECT_GE(adapters::kSqliteSchemaVersion, 3);
}

TEST_F(SqliteQueueTable, AVersion2FileIsMigratedWithEveryMessageInItsState) {
  WriteVersion2File();
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  auto queue = OpenQueue(database, "ces", /*max_receives=*/3);
  ASSERT_NE(queue, nullptr);
  ExpectVersion3Shape(*database);
  EXPECT_EQ(Texts(*database, "SELECT version FROM schema_versions WHERE component = 'devices'"),
            (std::vector<std::string>{"2"}))
      << "another component's version is its own business";
  EXPECT_EQ(KeptCounts(*database), (std::vector<std::string>{"ces 2 2 1", "other 1 0 0"}));

  auto stats = queue->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->visible, 3U) << "fresh, redriven and the one whose visibility ran out";
  EXPECT_EQ(stats->in_flight, 1U);
  EXPECT_EQ(stats->dead_letter, 1U);

  auto received = queue->Receive(10, seconds(30));
  ASSERT_TRUE(received.ok()) << received.status().ToString();
  ASSERT_EQ(received->size(), 3U);
  EXPECT_EQ((*received)[0].body, "expired");
  EXPECT_EQ((*received)[0].receive_count, 3);
  EXPECT_EQ((*received)[1].body, "fresh");
  EXPECT_EQ((*received)[1].receive_count, 1);
  EXPECT_EQ((*received)[2].body, "redriven");
  EXPECT_EQ(queue->Delete("2:1").code(), StatusCode::kOk) << "the in-flight delivery's receipt still works";
  auto dead = queue->PeekDeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1U);
  EXPECT_EQ((*dead)[0].body, "dead");
  auto other = OpenQueue(database, "other");
  ASSERT_NE(other, nullptr);
  auto theirs = other->Receive(10, seconds(30));
  ASSERT_TRUE(theirs.ok() && theirs->size() == 1U);
  EXPECT_EQ(KeptCounts(*database), CountedRows(*database));

  // Opened again: nothing migrates twice (the counts would double).
  database.reset();
  queue.reset();
  other.reset();
  database = OpenDatabase();
  ASSERT_NE(OpenQueue(database, "ces"), nullptr);
  EXPECT_EQ(KeptCounts(*database), CountedRows(*database));
}

TEST_F(SqliteQueueTable, AFailedMigrationLeavesTheVersion2FileAsItWas) {
  WriteVersion2File();
  {
    // A table of the name the migration creates, of another shape (a damaged or foreign file).
    auto database = OpenDatabase();
    ASSERT_NE(database, nullptr);
    ASSERT_TRUE(database->Lock().Exec("CREATE TABLE queue_counts (x)").ok());
  }
  auto queue = SqliteQueue::Open(Path(), "ces", clock_, 3);
  ASSERT_FALSE(queue.ok());
  EXPECT_FALSE(queue.status().IsRetryable()) << queue.status().ToString();
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  EXPECT_EQ(Texts(*database, "PRAGMA user_version"), (std::vector<std::string>{"2"}));
  EXPECT_FALSE(Contains(Texts(*database, "SELECT name FROM pragma_table_info('queue_messages')"), "leased"));
  EXPECT_TRUE(
      Contains(Texts(*database, "SELECT name FROM sqlite_schema WHERE type = 'index'"), "queue_messages_ready"));
}

// The memory queue is the reference (it scans its messages in id order); the SQLite queue must
// give the same answer to every call of a long random run, with time moving, and its kept counts
// must equal a full count throughout.
TEST_F(SqliteQueueTable, AnswersAsTheMemoryQueueOverARandomRun) {
  auto database = OpenDatabase();
  ASSERT_NE(database, nullptr);
  // Semantics, not durability: thousands of commits without an fsync each (seconds instead of
  // tens of seconds under the sanitizers).
  ASSERT_TRUE(database->Lock().Exec("PRAGMA synchronous = OFF").ok());
  constexpr int kMaxReceives = 3;
  auto sqlite = OpenQueue(database, "q", kMaxReceives);
  ASSERT_NE(sqlite, nullptr);
  adapters::MemoryQueue memory(clock_, kMaxReceives);
  std::mt19937 random(20261126);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(random); };
  std::vector<std::string> receipts;  // every receipt handed out, stale ones included
  int sent = 0;

  for (int step = 0; step < 10000; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const int op = uniform(0, 99);
    if (op < 25) {
      std::vector<std::string> bodies(static_cast<std::size_t>(uniform(1, 10)));
      for (auto& body : bodies) body = "b" + std::to_string(sent++);
      auto a = sqlite->SendBatch(bodies);
      auto b = memory.SendBatch(bodies);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(*a, *b);
    } else if (op < 55) {
      const auto max = static_cast<std::size_t>(uniform(1, 10));
      const Duration visibility = seconds(uniform(0, 4));
      auto a = sqlite->Receive(max, visibility);
      auto b = memory.Receive(max, visibility);
      ASSERT_TRUE(a.ok() && b.ok());
      ASSERT_EQ(a->size(), b->size());
      for (std::size_t i = 0; i < a->size(); ++i) {
        EXPECT_EQ((*a)[i].id, (*b)[i].id);
        EXPECT_EQ((*a)[i].body, (*b)[i].body);
        EXPECT_EQ((*a)[i].receipt, (*b)[i].receipt);
        EXPECT_EQ((*a)[i].receive_count, (*b)[i].receive_count);
        EXPECT_EQ((*a)[i].sent_at, (*b)[i].sent_at);
        receipts.push_back((*a)[i].receipt);
      }
    } else if (op < 80 && !receipts.empty()) {
      const std::string& receipt =
          receipts[static_cast<std::size_t>(uniform(0, static_cast<int>(receipts.size()) - 1))];
      const int which = uniform(0, 9);
      if (which < 5) {
        EXPECT_EQ(sqlite->Delete(receipt).code(), memory.Delete(receipt).code()) << "delete " << receipt;
      } else if (which < 6) {
        EXPECT_EQ(sqlite->DeadLetter(receipt).code(), memory.DeadLetter(receipt).code()) << "dead-letter " << receipt;
      } else {
        const Duration timeout = seconds(uniform(0, 4));
        EXPECT_EQ(sqlite->ChangeVisibility(receipt, timeout).code(), memory.ChangeVisibility(receipt, timeout).code())
            << "change visibility " << receipt;
      }
    } else if (op < 83) {
      const auto max = static_cast<std::size_t>(uniform(1, 3));
      auto a = sqlite->RedriveDeadLetters(max);
      auto b = memory.RedriveDeadLetters(max);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(*a, *b);
    } else if (op < 86) {
      auto a = sqlite->PeekDeadLetters(5);
      auto b = memory.PeekDeadLetters(5);
      ASSERT_TRUE(a.ok() && b.ok());
      ASSERT_EQ(a->size(), b->size());
      for (std::size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].id, (*b)[i].id);
    } else {
      clock_.Advance(std::chrono::milliseconds(uniform(0, 1500)));
    }
    auto a = sqlite->Stats();
    auto b = memory.Stats();
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->visible, b->visible);
    ASSERT_EQ(a->in_flight, b->in_flight);
    ASSERT_EQ(a->dead_letter, b->dead_letter);
    if (step % 100 == 0) {
      ASSERT_EQ(KeptCounts(*database), CountedRows(*database));
    }
  }
  EXPECT_EQ(KeptCounts(*database), CountedRows(*database));
}

}  // namespace
}  // namespace pwrcell::conformance
