// What one message costs the SQLite queue as the backlog grows (issue 10 item 1): send, receive,
// extend (ChangeVisibility), delete and dead-letter per message, and Stats() (which /metrics
// calls on every scrape), with 0, 10k, 100k and 1M messages waiting in the queue.
//
// One file in a temporary directory holds one queue; the backlog grows from one size to the next
// (batched sends, one unit of work per 10,000 messages), so every size is built once. At each
// size a cycle runs as serve's workers do, in one unit of work: 10 sends, a receive of 10 (the
// oldest: backlog messages, not the ones just sent), an extend of each, 5 deletes and 5
// dead-letterings, the commit. The backlog stays the same size throughout. Each operation is
// timed on its own (steady_clock around the call) and reported per message, as counters in
// seconds (send, receive, extend, delete, dead_letter, commit); the benchmark's own time is the
// whole cycle per message. The clock is fixed, so no delivery expires during a run.
//
//   queue_bench [--queue_backlogs=0,10000,100000,1000000] [--queue_cycles=200] [benchmark flags]
//
// CI builds it and may run it with small backlogs (--queue_backlogs=0,1000 --queue_cycles=5).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/memory/clocks.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_queue.h"

namespace {

using pwrcell::Duration;
using pwrcell::adapters::FakeClock;
using pwrcell::adapters::SqliteDatabase;
using pwrcell::adapters::SqliteQueue;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kBatch = 10;                // serve's receive batch (kMaxQueueBatch)
constexpr std::size_t kBodyBytes = 512;           // about an ingest record
constexpr std::size_t kMessagesPerUnit = 10'000;  // backlog building: one commit per this many
constexpr Duration kVisibility = std::chrono::seconds(60);

[[noreturn]] void Die(const std::string& what, const pwrcell::Status& status) {
  std::fprintf(stderr, "queue_bench: %s: %s\n", what.c_str(), status.ToString().c_str());
  std::exit(1);
}

// The queue under test and its backlog, shared by the benchmarks of every size (they run from
// the smallest size up, each growing the same queue).
class Fixture {
 public:
  Fixture() {
    char pattern[] = "/tmp/queue_bench.XXXXXX";
    if (mkdtemp(pattern) == nullptr) Die("mkdtemp", pwrcell::InternalError("cannot make a temporary directory"));
    dir_ = pattern;
    auto database = SqliteDatabase::Open((dir_ / "queue.db").string());
    if (!database.ok()) Die("opening the database", database.status());
    database_ = *database;
    auto queue = SqliteQueue::Create(database_, "bench", clock_, /*max_receives=*/5);
    if (!queue.ok()) Die("opening the queue", queue.status());
    queue_ = std::move(queue).value();
    std::mt19937 random(42);
    body_.resize(kBodyBytes);
    for (char& c : body_) c = static_cast<char>('a' + random() % 26);
  }
  ~Fixture() {
    queue_.reset();
    database_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Sends messages until `size` are waiting (the cycles keep the count unchanged).
  void GrowTo(std::size_t size) {
    if (size <= backlog_) return;
    const auto start = Clock::now();
    const std::vector<std::string> batch(kBatch, body_);
    while (backlog_ < size) {
      auto unit = database_->BeginUnitOfWork();
      if (!unit.ok()) Die("building the backlog", unit.status());
      for (std::size_t in_unit = 0; in_unit < kMessagesPerUnit && backlog_ < size; in_unit += kBatch) {
        auto ids = queue_->SendBatch(batch);
        if (!ids.ok()) Die("building the backlog", ids.status());
        backlog_ += kBatch;
      }
      if (auto status = unit->Commit(); !status.ok()) Die("building the backlog", status);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::fprintf(stderr, "queue_bench: backlog grown to %zu messages in %.1f s\n", backlog_, seconds);
  }

  SqliteDatabase& Database() { return *database_; }
  SqliteQueue& Queue() { return *queue_; }
  const std::string& Body() const { return body_; }

 private:
  std::filesystem::path dir_;
  FakeClock clock_;
  std::shared_ptr<SqliteDatabase> database_;
  std::unique_ptr<SqliteQueue> queue_;
  std::string body_;
  std::size_t backlog_ = 0;
};

Fixture& TheFixture() {
  static Fixture fixture;
  return fixture;
}

template <typename F>
double Timed(F&& f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Seconds per message, shown by Google Benchmark as a time (e.g. "25.1us").
benchmark::Counter PerMessage(double seconds, double messages) {
  return benchmark::Counter(messages > 0 ? seconds / messages : 0.0);
}

void QueueCycle(benchmark::State& state, std::size_t backlog) {
  Fixture& fixture = TheFixture();
  fixture.GrowTo(backlog);
  SqliteQueue& queue = fixture.Queue();
  double send = 0, receive = 0, extend = 0, remove = 0, dead_letter = 0, commit = 0;
  double sent = 0, received = 0, removed = 0, buried = 0;
  for (auto _ : state) {
    double cycle = 0;
    auto unit = fixture.Database().BeginUnitOfWork();
    if (!unit.ok()) Die("a cycle", unit.status());
    for (std::size_t i = 0; i < kBatch; ++i) {
      const double t = Timed([&] {
        auto id = queue.Send(fixture.Body());
        if (!id.ok()) Die("send", id.status());
      });
      send += t;
      cycle += t;
      ++sent;
    }
    pwrcell::Result<std::vector<pwrcell::ports::ReceivedMessage>> messages =
        std::vector<pwrcell::ports::ReceivedMessage>{};
    {
      const double t = Timed([&] { messages = queue.Receive(kBatch, kVisibility); });
      if (!messages.ok()) Die("receive", messages.status());
      if (messages->size() != kBatch) {
        Die("receive", pwrcell::InternalError("got " + std::to_string(messages->size()) + " messages"));
      }
      receive += t;
      cycle += t;
      received += static_cast<double>(messages->size());
    }
    for (const auto& m : *messages) {
      const double t = Timed([&] {
        if (auto status = queue.ChangeVisibility(m.receipt, kVisibility); !status.ok()) Die("extend", status);
      });
      extend += t;
      cycle += t;
    }
    for (std::size_t i = 0; i < messages->size(); ++i) {
      const bool bury = i % 2 == 1;
      const double t = Timed([&] {
        auto status = bury ? queue.DeadLetter((*messages)[i].receipt) : queue.Delete((*messages)[i].receipt);
        if (!status.ok()) Die(bury ? "dead-letter" : "delete", status);
      });
      (bury ? dead_letter : remove) += t;
      (bury ? buried : removed) += 1;
      cycle += t;
    }
    {
      const double t = Timed([&] {
        if (auto status = unit->Commit(); !status.ok()) Die("commit", status);
      });
      commit += t;
      cycle += t;
    }
    state.SetIterationTime(cycle / static_cast<double>(kBatch));  // the benchmark's time: per message
  }
  state.counters["send"] = PerMessage(send, sent);
  state.counters["receive"] = PerMessage(receive, received);
  state.counters["extend"] = PerMessage(extend, received);
  state.counters["delete"] = PerMessage(remove, removed);
  state.counters["dead_letter"] = PerMessage(dead_letter, buried);
  state.counters["commit"] = PerMessage(commit, received);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBatch));
}

void QueueStats(benchmark::State& state, std::size_t backlog) {
  Fixture& fixture = TheFixture();
  fixture.GrowTo(backlog);
  for (auto _ : state) {
    auto stats = fixture.Queue().Stats();
    if (!stats.ok()) Die("stats", stats.status());
    if (stats->visible < backlog) Die("stats", pwrcell::InternalError("the backlog is not visible"));
    benchmark::DoNotOptimize(stats);
  }
}

// "--name=value" removed from argv; nullopt-like empty when absent.
std::string TakeFlag(int& argc, char** argv, std::string_view name) {
  const std::string prefix = "--" + std::string(name) + "=";
  std::string value;
  int out = 1;
  for (int in = 1; in < argc; ++in) {
    const std::string_view arg = argv[in];
    if (arg.substr(0, prefix.size()) == prefix) {
      value = std::string(arg.substr(prefix.size()));
    } else {
      argv[out++] = argv[in];
    }
  }
  argc = out;
  return value;
}

std::vector<std::size_t> ParseSizes(const std::string& text) {
  std::vector<std::size_t> sizes;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    sizes.push_back(std::stoull(text.substr(start, comma - start)));
    start = comma + 1;
  }
  return sizes;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string backlogs_flag = TakeFlag(argc, argv, "queue_backlogs");
  const std::string cycles_flag = TakeFlag(argc, argv, "queue_cycles");
  std::vector<std::size_t> backlogs = ParseSizes(backlogs_flag.empty() ? "0,10000,100000,1000000" : backlogs_flag);
  std::sort(backlogs.begin(), backlogs.end());  // the fixture only grows
  const auto cycles = static_cast<benchmark::IterationCount>(cycles_flag.empty() ? 200 : std::stoll(cycles_flag));
  // Registered size-major (each size's benchmarks before the next size's backlog is built).
  for (const std::size_t backlog : backlogs) {
    const std::string suffix = "/backlog:" + std::to_string(backlog);
    benchmark::RegisterBenchmark(("BM_QueueCycle" + suffix).c_str(), QueueCycle, backlog)
        ->UseManualTime()
        ->Iterations(cycles)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("BM_QueueStats" + suffix).c_str(), QueueStats, backlog)
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
