// What the SQLite adapters promise beyond the port: a write acknowledged with OK survives the
// writer being killed (SIGKILL, no destructor, no checkpoint), and several processes can share
// one file. Children are forked and synchronized through pipes, never through sleeps.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"
#include "backends.h"

namespace pwrcell::conformance {
namespace {

using std::chrono::seconds;

constexpr char kProgress = '+';
constexpr char kFailed = '!';

// A forked child running `body`, which reports each durable step by writing kProgress to the
// fd it is given (kFailed on an error). After `body` the child blocks until it is killed, so
// that it never closes its database cleanly.
class Child {
 public:
  explicit Child(const std::function<bool(int progress_fd)>& body) {
    int progress[2];
    int hold[2];
    if (pipe(progress) != 0 || pipe(hold) != 0) {
      ADD_FAILURE() << "pipe: " << errno;
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(progress[0]);
      close(hold[1]);
      const bool ok = body(progress[1]);
      if (!ok) Write(progress[1], kFailed);
      // Blocks until killed; EOF (the parent died) ends it too, so no orphan lingers.
      char ignored;
      while (read(hold[0], &ignored, 1) < 0 && errno == EINTR) {
      }
      _exit(ok ? 0 : 1);
    }
    close(progress[1]);
    close(hold[0]);
    progress_fd_ = progress[0];
    hold_fd_ = hold[1];
    if (pid_ < 0) ADD_FAILURE() << "fork: " << errno;
  }

  ~Child() {
    if (pid_ > 0) Kill();
    if (progress_fd_ >= 0) close(progress_fd_);
    if (hold_fd_ >= 0) close(hold_fd_);
  }

  static void Write(int fd, char c) {
    while (write(fd, &c, 1) < 0 && errno == EINTR) {
    }
  }

  // Waits for `steps` progress bytes. False when the child failed or exited first.
  bool AwaitProgress(int steps) {
    for (int seen = 0; seen < steps;) {
      char c;
      const ssize_t n = read(progress_fd_, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || c != kProgress) return false;
      ++seen;
    }
    return true;
  }

  // SIGKILL and reap; true when the child died of that signal (not of an earlier exit).
  bool Kill() {
    if (pid_ <= 0) return false;
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

 private:
  pid_t pid_ = -1;
  int progress_fd_ = -1;
  int hold_fd_ = -1;
};

std::string Body(int i) {
  return "message-" + std::to_string(i);
}

domain::DeviceRecord Device(int i) {
  domain::DeviceRecord d;
  d.remote_id = "sys-" + std::to_string(1000 + i);
  d.name = "system " + std::to_string(i);
  d.inverter_rcpns = {"rcpn-" + std::to_string(i)};
  d.last_heard_at = FromUnixMillis(1'763'800'000'000 + i);
  return d;
}

class SqliteCrash : public ::testing::Test {
 protected:
  std::string Path() const { return (dir_.Path() / "adapter.db").string(); }

  std::unique_ptr<adapters::SqliteQueue> OpenQueue(const ports::Clock& clock, const std::string& name = "q") {
    auto queue = adapters::SqliteQueue::Open(Path(), name, clock, 5);
    EXPECT_TRUE(queue.ok()) << queue.status().ToString();
    return queue.ok() ? std::move(queue).value() : nullptr;
  }

  // Receives everything visible, deleting nothing; fails the test on an error.
  std::vector<ports::ReceivedMessage> DrainVisible(ports::Queue& queue) {
    std::vector<ports::ReceivedMessage> all;
    while (true) {
      auto batch = queue.Receive(ports::kMaxQueueBatch, seconds(60));
      EXPECT_TRUE(batch.ok()) << batch.status().ToString();
      if (!batch.ok() || batch->empty()) return all;
      all.insert(all.end(), batch->begin(), batch->end());
    }
  }

  TempDir dir_;
  adapters::FakeClock clock_;
};

TEST_F(SqliteCrash, EverySentMessageSurvivesAKilledSender) {
  constexpr int kMessages = 200;
  Child child([&](int progress) {
    adapters::FakeClock clock;
    auto queue = adapters::SqliteQueue::Open(Path(), "q", clock, 5);
    if (!queue.ok()) return false;
    for (int i = 0; i < kMessages; ++i) {
      if (!(*queue)->Send(Body(i)).ok()) return false;
      Child::Write(progress, kProgress);  // acknowledged: it must now survive
    }
    return true;
  });
  ASSERT_TRUE(child.AwaitProgress(kMessages));
  ASSERT_TRUE(child.Kill()) << "the child must die by SIGKILL, not exit cleanly";

  auto queue = OpenQueue(clock_);
  ASSERT_NE(queue, nullptr);
  auto stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, static_cast<std::size_t>(kMessages));
  auto received = DrainVisible(*queue);
  ASSERT_EQ(received.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) {
    EXPECT_EQ(received[i].body, Body(i));
    EXPECT_EQ(received[i].receive_count, 1);
  }
}

TEST_F(SqliteCrash, MessagesReceivedByAKilledConsumerComeBackAfterTheirVisibilityTimeout) {
  constexpr int kMessages = 50;
  constexpr Duration kVisibility = seconds(30);
  {
    auto queue = OpenQueue(clock_);
    ASSERT_NE(queue, nullptr);
    for (int i = 0; i < kMessages; i += 10) {
      std::vector<std::string> batch;
      for (int j = i; j < i + 10; ++j) batch.push_back(Body(j));
      ASSERT_TRUE(queue->SendBatch(batch).ok());
    }
  }  // closed before fork: an open SQLite connection must not cross fork()

  Child child([&](int progress) {
    adapters::FakeClock clock;  // starts where clock_ does
    auto queue = adapters::SqliteQueue::Open(Path(), "q", clock, 5);
    if (!queue.ok()) return false;
    for (int received = 0; received < kMessages;) {
      auto batch = (*queue)->Receive(ports::kMaxQueueBatch, kVisibility);
      if (!batch.ok() || batch->empty()) return false;
      for (std::size_t i = 0; i < batch->size(); ++i) Child::Write(progress, kProgress);
      received += static_cast<int>(batch->size());
    }
    return true;
  });
  ASSERT_TRUE(child.AwaitProgress(kMessages));
  ASSERT_TRUE(child.Kill());

  auto queue = OpenQueue(clock_);
  ASSERT_NE(queue, nullptr);
  auto stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->in_flight, static_cast<std::size_t>(kMessages));
  EXPECT_TRUE(DrainVisible(*queue).empty()) << "still hidden before the visibility timeout";

  clock_.Advance(kVisibility);
  auto again = DrainVisible(*queue);
  ASSERT_EQ(again.size(), static_cast<std::size_t>(kMessages));
  std::set<std::string> bodies;
  for (const auto& m : again) {
    EXPECT_EQ(m.receive_count, 2);
    bodies.insert(m.body);
  }
  EXPECT_EQ(bodies.size(), static_cast<std::size_t>(kMessages));
}

TEST_F(SqliteCrash, EveryPutDeviceSurvivesAKilledWriter) {
  constexpr int kDevices = 100;
  Child child([&](int progress) {
    auto store = adapters::SqliteDeviceStore::Open(Path());
    if (!store.ok()) return false;
    for (int i = 0; i < kDevices; ++i) {
      if (!(*store)->Put(Device(i)).ok()) return false;
      Child::Write(progress, kProgress);
    }
    return true;
  });
  ASSERT_TRUE(child.AwaitProgress(kDevices));
  ASSERT_TRUE(child.Kill());

  auto store = adapters::SqliteDeviceStore::Open(Path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto all = (*store)->List();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), static_cast<std::size_t>(kDevices));
  for (int i = 0; i < kDevices; ++i) {
    domain::DeviceRecord expected = Device(i);
    expected.version = 1;
    EXPECT_EQ((*all)[i], expected);
  }
}

// Two processes writing one file at once: the busy timeout makes each wait for the other's
// write lock instead of failing with SQLITE_BUSY.
TEST_F(SqliteCrash, TwoProcessesSendToOneFileAtOnce) {
  constexpr int kEach = 150;
  {
    auto queue = OpenQueue(clock_);  // create the file and schema before both start
    ASSERT_NE(queue, nullptr);
  }
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  Child child([&](int progress) {
    close(go[1]);
    adapters::FakeClock clock;
    auto queue = adapters::SqliteQueue::Open(Path(), "q", clock, 5);
    if (!queue.ok()) return false;
    Child::Write(progress, kProgress);  // ready
    char c;
    if (read(go[0], &c, 1) != 1) return false;
    for (int i = 0; i < kEach; ++i) {
      if (!(*queue)->Send("child-" + std::to_string(i)).ok()) return false;
    }
    Child::Write(progress, kProgress);  // done
    return true;
  });
  close(go[0]);
  auto queue = OpenQueue(clock_);
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(child.AwaitProgress(1));
  Child::Write(go[1], 'g');
  close(go[1]);
  for (int i = 0; i < kEach; ++i) ASSERT_TRUE(queue->Send("parent-" + std::to_string(i)).ok());
  ASSERT_TRUE(child.AwaitProgress(1));
  auto stats = queue->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, static_cast<std::size_t>(2 * kEach));
}

// Two connections (as two processes would have) updating one record at the same version.
TEST_F(SqliteCrash, TwoConnectionsAtTheSameVersionHaveExactlyOneWinner) {
  auto first = adapters::SqliteDeviceStore::Open(Path());
  auto second = adapters::SqliteDeviceStore::Open(Path());
  ASSERT_TRUE(first.ok() && second.ok());
  auto base = (*first)->Put(Device(1));
  ASSERT_TRUE(base.ok());
  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    auto current = (*first)->Get(base->remote_id);
    ASSERT_TRUE(current.ok() && current->has_value());
    std::atomic<int> ready{0};
    Status results[2];
    ports::DeviceStore* stores[2] = {first->get(), second->get()};
    std::vector<std::thread> writers;
    writers.reserve(2);
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        domain::DeviceRecord mine = **current;
        mine.name = "writer " + std::to_string(w);
        ++ready;
        while (ready.load() < 2) std::this_thread::yield();
        results[w] = stores[w]->Put(mine).status();
      });
    }
    for (auto& t : writers) t.join();
    const int winners = (results[0].ok() ? 1 : 0) + (results[1].ok() ? 1 : 0);
    ASSERT_EQ(winners, 1) << results[0].ToString() << " / " << results[1].ToString();
    const Status& loser = results[0].ok() ? results[1] : results[0];
    EXPECT_EQ(loser.code(), StatusCode::kAborted) << loser.ToString();
  }
  auto final_record = (*second)->Get(base->remote_id);
  ASSERT_TRUE(final_record.ok() && final_record->has_value());
  EXPECT_EQ((*final_record)->version, 1 + kRounds);
}

TEST_F(SqliteCrash, AFileFromANewerSchemaIsRefused) {
  {
    auto database = adapters::SqliteDatabase::Open(Path());
    ASSERT_TRUE(database.ok());
    auto session = (*database)->Lock();
    ASSERT_TRUE(session.Exec("PRAGMA user_version = 99").ok());
  }
  auto store = adapters::SqliteDeviceStore::Open(Path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition) << store.status().ToString();
}

TEST_F(SqliteCrash, AFileThatIsNotADatabaseIsAnError) {
  {
    FILE* f = fopen(Path().c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const std::string junk(4096, 'x');
    fwrite(junk.data(), 1, junk.size(), f);
    fclose(f);
  }
  auto store = adapters::SqliteDeviceStore::Open(Path());
  ASSERT_FALSE(store.ok());
  EXPECT_FALSE(store.status().IsRetryable()) << store.status().ToString();
}

}  // namespace
}  // namespace pwrcell::conformance
