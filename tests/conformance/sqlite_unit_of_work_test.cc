// SqliteDatabase::BeginUnitOfWork: several operations of the SQLite device store and queues,
// made by one thread, as one transaction (one commit, one fsync), as `serve` uses it for a round
// of the telemetry workers and for storing a batch of ingested records.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "adapters/memory/clocks.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "backends.h"

namespace pwrcell::conformance {
namespace {

using std::chrono::seconds;

domain::DeviceRecord Device(const std::string& remote_id) {
  domain::DeviceRecord d;
  d.remote_id = remote_id;
  d.inverter_rcpns = {"rcpn-" + remote_id};
  return d;
}

class SqliteUnitOfWork : public ::testing::Test {
 protected:
  void SetUp() override {
    auto database = adapters::SqliteDatabase::Open(Path());
    ASSERT_TRUE(database.ok()) << database.status().ToString();
    database_ = *database;
    auto queue = adapters::SqliteQueue::Create(database_, "q", clock_, 5);
    ASSERT_TRUE(queue.ok()) << queue.status().ToString();
    queue_ = std::move(*queue);
    auto store = adapters::SqliteDeviceStore::Create(database_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    // Another connection, as another process has (opened now: opening writes the schema).
    auto outside_queue = adapters::SqliteQueue::Open(Path(), "q", clock_, 5);
    auto outside_store = adapters::SqliteDeviceStore::Open(Path());
    ASSERT_TRUE(outside_queue.ok() && outside_store.ok());
    outside_queue_ = std::move(*outside_queue);
    outside_store_ = std::move(*outside_store);
  }

  std::string Path() const { return (dir_.Path() / "adapter.db").string(); }

  // What another connection (another process) sees: visible messages and devices.
  std::pair<std::size_t, std::size_t> SeenFromOutside() {
    auto stats = outside_queue_->Stats();
    auto devices = outside_store_->List();
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    EXPECT_TRUE(devices.ok()) << devices.status().ToString();
    return {stats.ok() ? stats->visible : 0, devices.ok() ? devices->size() : 0};
  }

  TempDir dir_;
  adapters::FakeClock clock_;
  std::shared_ptr<adapters::SqliteDatabase> database_;
  std::unique_ptr<adapters::SqliteQueue> queue_;
  std::unique_ptr<adapters::SqliteDeviceStore> store_;
  std::unique_ptr<adapters::SqliteQueue> outside_queue_;
  std::unique_ptr<adapters::SqliteDeviceStore> outside_store_;
};

TEST_F(SqliteUnitOfWork, CommitMakesEveryOperationDurableAtOnce) {
  auto unit = database_->BeginUnitOfWork();
  ASSERT_TRUE(unit.ok()) << unit.status().ToString();
  ASSERT_TRUE(queue_->SendBatch({"a", "b", "c"}).ok());  // a transaction of its own: a savepoint here
  ASSERT_TRUE(store_->Put(Device("sys-1")).ok());        // a single statement: joins the unit
  ASSERT_TRUE(queue_->Send("d").ok());
  auto received = queue_->Receive(1, seconds(60));
  ASSERT_TRUE(received.ok() && received->size() == 1);
  ASSERT_TRUE(queue_->Delete(received->front().receipt).ok());
  EXPECT_EQ(SeenFromOutside(), (std::pair<std::size_t, std::size_t>{0, 0})) << "nothing visible before the commit";

  ASSERT_TRUE(unit->Commit().ok());
  EXPECT_EQ(SeenFromOutside(), (std::pair<std::size_t, std::size_t>{3, 1}));
  EXPECT_EQ(unit->Commit().code(), StatusCode::kFailedPrecondition) << "a unit commits once";
}

// PRAGMA synchronous of the connection: 2 = FULL, 1 = NORMAL.
std::int64_t Synchronous(adapters::SqliteDatabase& database) {
  auto session = database.Lock();
  auto pragma = session.Prepare("PRAGMA synchronous");
  EXPECT_TRUE(pragma.ok());
  if (!pragma.ok()) return -1;
  auto row = pragma->Step();
  EXPECT_TRUE(row.ok() && *row);
  return pragma->ColumnInt64(0);
}

TEST_F(SqliteUnitOfWork, AnAtomicCommitIsAllOrNothingAndLeavesTheConnectionDurable) {
  ASSERT_EQ(Synchronous(*database_), 2) << "synchronous=FULL";
  auto unit = database_->BeginUnitOfWork();
  ASSERT_TRUE(unit.ok()) << unit.status().ToString();
  ASSERT_TRUE(queue_->SendBatch({"a", "b"}).ok());
  ASSERT_TRUE(store_->Put(Device("sys-1")).ok());
  ASSERT_TRUE(unit->Commit(adapters::SqliteUnitOfWork::Mode::kAtomic).ok());
  EXPECT_EQ(SeenFromOutside(), (std::pair<std::size_t, std::size_t>{2, 1}));
  EXPECT_EQ(Synchronous(*database_), 2) << "the next commits wait for the disk again";
  // Committed for good: a connection opened afterwards (after this one closed) reads it.
  queue_.reset();
  store_.reset();
  database_.reset();
  outside_queue_.reset();
  outside_store_.reset();
  auto reopened = adapters::SqliteQueue::Open(Path(), "q", clock_, 5);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->Stats()->visible, 2U);
}

TEST_F(SqliteUnitOfWork, EndingWithoutCommitRollsEverythingBack) {
  ASSERT_TRUE(queue_->Send("before").ok());
  {
    auto unit = database_->BeginUnitOfWork();
    ASSERT_TRUE(unit.ok());
    auto received = queue_->Receive(1, seconds(60));
    ASSERT_TRUE(received.ok() && received->size() == 1);
    ASSERT_TRUE(queue_->Delete(received->front().receipt).ok());
    ASSERT_TRUE(queue_->SendBatch({"x", "y"}).ok());
    ASSERT_TRUE(store_->Put(Device("sys-1")).ok());
  }
  EXPECT_EQ(SeenFromOutside(), (std::pair<std::size_t, std::size_t>{1, 0}));
  auto again = queue_->Receive(10, seconds(60));  // the same connection works normally afterwards
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().body, "before");
  EXPECT_EQ(again->front().receive_count, 1) << "its receive was rolled back too";
}

TEST_F(SqliteUnitOfWork, AFailedOperationUndoesOnlyItselfAndTheRestCommits) {
  auto unit = database_->BeginUnitOfWork();
  ASSERT_TRUE(unit.ok());
  auto first = store_->Put(Device("sys-1"));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(store_->Put(Device("sys-1")).status().code(), StatusCode::kAborted);  // exists already
  EXPECT_EQ(store_->Remove("sys-1", 7).code(), StatusCode::kAborted);             // its savepoint rolls back
  ASSERT_TRUE(queue_->Send("after the failures").ok());
  ASSERT_TRUE(unit->Commit().ok());
  EXPECT_EQ(SeenFromOutside(), (std::pair<std::size_t, std::size_t>{1, 1}));
}

TEST_F(SqliteUnitOfWork, WhenSqliteEndsTheTransactionNothingMoreRunsAlone) {
  auto unit = database_->BeginUnitOfWork();
  ASSERT_TRUE(unit.ok());
  ASSERT_TRUE(queue_->Send("lost with the transaction").ok());
  {
    auto session = database_->Lock();            // re-enters: the unit's thread
    ASSERT_TRUE(session.Exec("ROLLBACK").ok());  // as SQLite does after an I/O error
  }
  EXPECT_EQ(queue_->Send("would commit on its own").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store_->Put(Device("sys-1")).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(unit->Commit().code(), StatusCode::kUnavailable);
  EXPECT_EQ(SeenFromOutside(), (std::pair<std::size_t, std::size_t>{0, 0}));
  EXPECT_TRUE(queue_->Send("after the unit").ok());
}

TEST_F(SqliteUnitOfWork, UnitsDoNotNestAndOtherThreadsWaitForTheUnit) {
  auto unit = database_->BeginUnitOfWork();
  ASSERT_TRUE(unit.ok());
  EXPECT_EQ(database_->BeginUnitOfWork().status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(queue_->Send("from the unit").ok());

  std::atomic<bool> sent{false};
  std::thread other([&] {
    EXPECT_TRUE(queue_->Send("from another thread").ok());
    sent.store(true);
  });
  // The other thread cannot have used the connection while the unit holds it.
  EXPECT_FALSE(sent.load());
  ASSERT_TRUE(unit->Commit().ok());
  other.join();
  EXPECT_TRUE(sent.load());
  EXPECT_EQ(SeenFromOutside().first, 2u);

  auto next = database_->BeginUnitOfWork();  // a new unit once the first has ended
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  ASSERT_TRUE(next->Commit().ok());
}

}  // namespace
}  // namespace pwrcell::conformance
