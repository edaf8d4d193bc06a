// Worker pools over ports::Queue for `serve`: N threads receive messages and hand them to a
// handler; each message's Status decides its fate (the queue workers decide from the code alone,
// CONVENTIONS "Errors"):
//   OK                 -> Delete;
//   retryable          -> ChangeVisibility(backoff): delivered again after base * 2^(n-1), capped
//                         (n = receive count; an outage has its own base and cap); on the last
//                         of max_receives deliveries it is dead-lettered, logged and counted,
//                         unless it failed with an outage the pool's probe confirmed: then it is
//                         queued again with its deliveries starting over (WorkerOptions::outage);
//   anything else      -> DeadLetter at once (retrying cannot help), logged and counted.
// Several queues may be given in priority order: a worker drains the first before it takes from
// the next (Concerto control requests go before telemetry). Idle workers wait on a condition
// variable that Wake() signals (ingest calls it), with a short poll as a fallback.
//
// With a batch_scope, a round is two units: the receives, then the handling and every disposal. A
// prepared handler (the second constructor) splits the handling: its first step (CPU work and
// reads) runs between the two units, outside any transaction, so that one worker prepares while
// another writes; only its second step runs inside the second unit.
//
// Stop() lets every in-flight handler finish, then joins: nothing received is lost (a message
// whose handler did not finish is delivered again after its visibility timeout).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "ports/queue.h"

namespace pwrcell::runtime::serve {

// Makes one round of a worker (receive, handle, dispose every message) a single unit, e.g. one
// database transaction, so that a batch of small writes costs one durable commit. Commit()
// failing means the round's effects are gone: its messages are delivered again.
class BatchScope {
 public:
  virtual ~BatchScope() = default;
  virtual Status Commit() = 0;
};

struct WorkerOptions {
  std::string name;  // "concerto", "ces", "telemetry": logs and metric labels
  int threads = 1;
  Duration visibility_timeout = std::chrono::seconds(60);
  // Up to this many messages are gathered (several receives) for one handler call.
  std::size_t batch = ports::kMaxQueueBatch;
  Duration idle_poll = std::chrono::milliseconds(200);
  Duration retry_base = std::chrono::seconds(5);
  Duration retry_max = std::chrono::seconds(60);
  // The backoff of a failure that satisfies `outage` (the service down, not the message at
  // fault), base * 2^(n-1) capped likewise: longer, so that max_receives deliveries span a long
  // outage even where the probe cannot see it (one operation failing while the probe's call is
  // answered). Messages put back with it while the pool pauses are made visible again as soon as
  // the pool resumes, so the longer delay does not slow the drain after an outage.
  Duration outage_retry_base = std::chrono::seconds(5);
  Duration outage_retry_max = std::chrono::seconds(60);
  // The queue's max_receives: a retryable failure on the last delivery is dead-lettered at once,
  // logged and counted (instead of silently by the queue's next receive). 0: leave it to the queue.
  int max_receives = 0;
  // Optional: opens the scope of one round. Only for handlers without network calls, or prepared
  // handlers that make them in their first step (the scope may hold the database). When it cannot
  // be opened, the round runs without one.
  std::function<Result<std::unique_ptr<BatchScope>>()> batch_scope;

  // Optional: a pool-wide pause while the service the handler calls is down. When a message's
  // Status satisfies `outage` (the service unreachable, failing or rate limiting, not the message
  // at fault; serve and the Lambda functions use processes::IsOutage), one worker calls `probe` (a cheap call to the
  // service, no message) while the pool stops receiving. A probe that gets an answer (success, or a refusal that is not
  // itself an outage) means one operation failed, not the service: the pool goes on. A probe that fails pauses the
  // whole pool: it stops receiving and probes again after pause_base, doubling up to pause_max, until an answer comes;
  // then it resumes.
  //
  // What an outage costs a message: the failed message itself follows the usual retry rule
  // (backoff, counted towards max_receives), but while the pool is paused nothing is received, so
  // an outage of any length costs a message at most the one delivery it was in when the outage
  // began. And the delivery budget is never what ends a message during an outage: one that fails
  // with an outage on its last delivery while the probe confirms the service is down is queued
  // again as a new message (Send, then Delete of the old one: its deliveries start over; counted
  // as outcome "requeued") instead of being dead-lettered. So outages of any length or number
  // dead-letter nothing; a message whose own calls keep failing while the service answers the
  // probe uses up its max_receives deliveries and is dead-lettered, logged and counted.
  // Metrics: pwrcell_queue_pool_paused{pool} (1 while paused) and
  // pwrcell_queue_pool_outage_seconds{pool} (how long the current pause has lasted, updated at
  // every probe; 0 once resumed); the backlog is pwrcell_queue_depth.
  std::function<bool(const Status&)> outage;
  std::function<Status()> probe;
  Duration pause_base = std::chrono::seconds(1);
  Duration pause_max = std::chrono::seconds(10);

  // Optional: true while the store cannot be written (a full disk, a read-only or failing file
  // system: SqliteDatabase::InTrouble). The pool then receives nothing, since a round could only
  // fail and use up its messages' deliveries, and checks again every idle_poll (an atomic read: no
  // store call, no log line) until the store can be written. A message whose handling failed while
  // the store was in trouble is not at fault: it is never dead-lettered for it, even on its last
  // delivery (it is rescheduled like any retry), and it makes no outage probe.
  std::function<bool()> store_trouble;
};

// The worker pools' metrics, declared once (common/metrics.h); every pool counts on the same family.
struct QueueWorkerMetrics {
  explicit QueueWorkerMetrics(Metrics* registry);
  Counter<2> messages;  // {pool, outcome=done|retry|requeued|dead_letter}
  Counter<1> pauses;    // {pool}: outages that paused the pool
  Counter<2> probes;    // {pool, outcome=ok|failed}
  Gauge<1> paused;      // {pool}: 1 while paused
  Gauge<1> outage;      // {pool}: seconds the current pause has lasted (0 when not paused)
};

class QueueWorkers {
 public:
  // One Status per message, in order.
  using Handler = std::function<std::vector<Status>(const std::vector<ports::ReceivedMessage>&)>;

  // A handler in two steps: the first (given the batch) runs outside the round's unit of work and
  // returns the second, which runs inside it and gives one Status per message, in order.
  using PreparedHandler =
      std::function<std::function<std::vector<Status>()>(const std::vector<ports::ReceivedMessage>&)>;

  QueueWorkers(WorkerOptions options, std::vector<ports::Queue*> queues, Handler handler, Metrics& metrics);
  QueueWorkers(WorkerOptions options, std::vector<ports::Queue*> queues, PreparedHandler handler, Metrics& metrics);
  ~QueueWorkers();
  QueueWorkers(const QueueWorkers&) = delete;
  QueueWorkers& operator=(const QueueWorkers&) = delete;

  void Start();
  void Stop();  // idempotent
  void Wake();

  // The delay before delivery n + 1 after n failed deliveries. Exposed for tests and the Lambda
  // functions (which follow the same schedule).
  static Duration RetryDelay(const WorkerOptions& options, int receive_count);
  // The same after a failure that is an outage (outage_retry_base, outage_retry_max).
  static Duration OutageRetryDelay(const WorkerOptions& options, int receive_count);

 private:
  void Run();
  void Dispose(ports::Queue& queue, const ports::ReceivedMessage& message, const Status& status);
  // The outage pause (WorkerOptions::outage): true while the pool must not receive; probes the
  // service when a pause has run out (one worker at a time).
  bool Paused();
  // After a message failed with an outage: probes the service (unless the pool is paused already,
  // or another worker is finding out; then waits for its answer). True when the pool is paused.
  bool NoteOutage(const Status& status);
  // A message that failed with an outage on its last delivery while the service is down: sent
  // again as a new message, the old one deleted (WorkerOptions::outage).
  void Requeue(ports::Queue& queue, const ports::ReceivedMessage& message, const Status& status);
  // store_trouble, logging once when the pool begins and ends waiting for the store.
  bool StoreTrouble();

  const WorkerOptions options_;
  const std::vector<ports::Queue*> queues_;
  PreparedHandler handler_;
  const QueueWorkerMetrics metrics_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> threads_;
  // The outage pause, guarded by mutex_.
  bool paused_ = false;
  bool probing_ = false;
  std::chrono::steady_clock::time_point resume_at_;
  std::chrono::steady_clock::time_point paused_since_;
  Duration pause_ = Duration::zero();
  // Messages put back with the outage backoff since the last resume: made visible when the pool
  // resumes (bounded; beyond the bound a message just waits out its delay).
  std::vector<std::pair<ports::Queue*, std::string>> outage_delayed_;
  std::atomic<bool> waiting_for_store_{false};
};

}  // namespace pwrcell::runtime::serve
