#include "runtime/serve/queue_workers.h"

#include <spdlog/spdlog.h>

#include <functional>
#include <utility>

namespace pwrcell::runtime::serve {

namespace {

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

QueueWorkerMetrics::QueueWorkerMetrics(Metrics* registry)
    : messages(registry, "pwrcell_queue_messages_total",
               "Queue messages handled, by worker pool and outcome (done, retry, dead_letter)", {"pool", "outcome"}),
      pauses(registry, "pwrcell_queue_pool_pauses_total",
             "Outages of the service a worker pool calls that paused the pool's receiving", {"pool"}),
      probes(registry, "pwrcell_queue_pool_probes_total", "Probes of a paused pool's service, by outcome (ok, failed)",
             {"pool", "outcome"}),
      paused(registry, "pwrcell_queue_pool_paused", "1 while a worker pool is paused by an outage of its service",
             {"pool"}),
      outage(registry, "pwrcell_queue_pool_outage_seconds",
             "How long the current outage pause of a worker pool has lasted (updated at every probe; 0 when not "
             "paused)",
             {"pool"}) {}

QueueWorkers::QueueWorkers(WorkerOptions options, std::vector<ports::Queue*> queues, Handler handler, Metrics& metrics)
    : QueueWorkers(std::move(options), std::move(queues),
                   PreparedHandler([handler = std::move(handler)](const std::vector<ports::ReceivedMessage>& batch) {
                     return std::function<std::vector<Status>()>([&handler, &batch] { return handler(batch); });
                   }),
                   metrics) {}

QueueWorkers::QueueWorkers(WorkerOptions options, std::vector<ports::Queue*> queues, PreparedHandler handler,
                           Metrics& metrics)
    : options_(std::move(options)), queues_(std::move(queues)), handler_(std::move(handler)), metrics_(&metrics) {}

QueueWorkers::~QueueWorkers() {
  Stop();
}

void QueueWorkers::Start() {
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Run(); });
}

void QueueWorkers::Stop() {
  stopping_.store(true);
  wake_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void QueueWorkers::Wake() {
  wake_.notify_all();
}

namespace {

Duration Backoff(Duration base, Duration max, int receive_count) {
  Duration delay = base;
  for (int i = 1; i < receive_count && delay < max; ++i) delay *= 2;
  return std::min(delay, max);
}

// Receipts remembered for the resume (outage_delayed_); a larger outage backlog waits out its delay.
constexpr std::size_t kMaxOutageDelayed = 10000;

}  // namespace

Duration QueueWorkers::RetryDelay(const WorkerOptions& options, int receive_count) {
  return Backoff(options.retry_base, options.retry_max, receive_count);
}

Duration QueueWorkers::OutageRetryDelay(const WorkerOptions& options, int receive_count) {
  return Backoff(options.outage_retry_base, options.outage_retry_max, receive_count);
}

bool QueueWorkers::NoteOutage(const Status& status) {
  {
    std::unique_lock lock(mutex_);
    if (paused_) return true;
    if (probing_) {
      // Another worker is finding out: its answer is this one's too.
      wake_.wait(lock, [this] { return !probing_ || stopping_.load(); });
      return paused_;
    }
    probing_ = true;  // the pool stops receiving until the probe answers (Paused)
  }
  // One operation failing is not an outage: the service is down only if the probe fails too.
  const Status probed = options_.probe ? options_.probe() : status;
  const bool answered = probed.ok() || !options_.outage(probed);
  std::lock_guard lock(mutex_);
  probing_ = false;
  wake_.notify_all();
  metrics_.probes.Increment({options_.name, answered ? "ok" : "failed"});
  if (answered) {
    outage_delayed_.clear();  // not an outage: those messages wait out their delay
    return false;
  }
  paused_ = true;
  pause_ = options_.pause_base;
  paused_since_ = std::chrono::steady_clock::now();
  resume_at_ = paused_since_ + pause_;
  metrics_.pauses.Increment({options_.name});
  metrics_.paused.Set({options_.name}, 1);
  metrics_.outage.Set({options_.name}, 0);
  spdlog::warn("{} worker: the service is down ({}); pausing the pool, probing every {} ms up to {} s", options_.name,
               probed.ToString(), std::chrono::duration_cast<std::chrono::milliseconds>(pause_).count(),
               std::chrono::duration_cast<std::chrono::seconds>(options_.pause_max).count());
  return true;
}

bool QueueWorkers::Paused() {
  {
    std::lock_guard lock(mutex_);
    if (!paused_) return probing_;  // an outage being found out: receive nothing meanwhile
    if (probing_ || std::chrono::steady_clock::now() < resume_at_) return true;
    probing_ = true;  // this worker probes; the others keep waiting
  }
  const Status probed = options_.probe ? options_.probe() : Status::Ok();
  // Any answer that is not itself an outage means the service is there (a refusal of the probe
  // is for the messages' own handling to report): never stay paused for a reason probing cannot
  // end.
  const bool answered = probed.ok() || !options_.outage(probed);
  std::vector<std::pair<ports::Queue*, std::string>> delayed;
  {
    std::lock_guard lock(mutex_);
    probing_ = false;
    wake_.notify_all();
    metrics_.probes.Increment({options_.name, answered ? "ok" : "failed"});
    const double lasted = Seconds(std::chrono::steady_clock::now() - paused_since_);
    if (!answered) {
      pause_ = std::min(pause_ * 2, options_.pause_max);
      resume_at_ = std::chrono::steady_clock::now() + pause_;
      metrics_.outage.Set({options_.name}, lasted);
      spdlog::debug("{} worker: probe failed ({}); next in {} ms", options_.name, probed.ToString(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(pause_).count());
      return true;
    }
    if (!probed.ok()) {
      spdlog::warn("{} worker: the probe was refused ({}); resuming anyway", options_.name, probed.ToString());
    }
    paused_ = false;
    metrics_.paused.Set({options_.name}, 0);
    metrics_.outage.Set({options_.name}, 0);
    delayed.swap(outage_delayed_);
    spdlog::info(
        "{} worker: the service answers again after {:.0f} s; the pool resumes ({} messages put back during "
        "the outage made visible now)",
        options_.name, lasted, delayed.size());
  }
  // Outside the lock (a worker may hold the store while it waits for the lock). A stale receipt,
  // of a message delivered again since, leaves that message alone.
  for (const auto& [queue, receipt] : delayed) (void)queue->ChangeVisibility(receipt, Duration::zero());
  return false;
}

bool QueueWorkers::StoreTrouble() {
  if (!options_.store_trouble) return false;
  const bool trouble = options_.store_trouble();
  if (waiting_for_store_.exchange(trouble) != trouble) {
    if (trouble) {
      spdlog::warn("{} worker: the store cannot be written; the pool waits for it", options_.name);
    } else {
      spdlog::info("{} worker: the store can be written again; the pool resumes", options_.name);
    }
  }
  return trouble;
}

void QueueWorkers::Dispose(ports::Queue& queue, const ports::ReceivedMessage& message, const Status& status) {
  const std::string& pool = options_.name;
  // A failure while the store is in trouble is the store's, not the message's: no last delivery.
  const bool last = options_.max_receives > 0 && message.receive_count >= options_.max_receives &&
                    !(status.IsRetryable() && options_.store_trouble && options_.store_trouble());
  if (status.ok()) {
    Status deleted = queue.Delete(message.receipt);
    if (!deleted.ok()) spdlog::warn("{} worker: deleting message {}: {}", pool, message.id, deleted.ToString());
    metrics_.messages.Increment({pool, "done"});
    return;
  }
  if (status.IsRetryable() && last) {
    // The queue would dead-letter it silently on the next receive; do it now, where the reason
    // is known, so that it is logged and counted.
    spdlog::error("{} worker: message {} failed on its last delivery ({} of {}), dead-lettered: {}", pool, message.id,
                  message.receive_count, options_.max_receives, status.ToString());
    Status buried = queue.DeadLetter(message.receipt);
    if (!buried.ok()) spdlog::warn("{} worker: dead-lettering message {}: {}", pool, message.id, buried.ToString());
    metrics_.messages.Increment({pool, "dead_letter"});
    return;
  }
  if (status.IsRetryable()) {
    const bool outage = options_.outage && options_.outage(status);
    const Duration delay =
        outage ? OutageRetryDelay(options_, message.receive_count) : RetryDelay(options_, message.receive_count);
    if (outage) {
      std::lock_guard lock(mutex_);
      if (outage_delayed_.size() < kMaxOutageDelayed) outage_delayed_.emplace_back(&queue, message.receipt);
    }
    spdlog::warn("{} worker: message {} (delivery {}) failed, retrying in {} s: {}", pool, message.id,
                 message.receive_count, std::chrono::duration_cast<std::chrono::seconds>(delay).count(),
                 status.ToString());
    Status changed = queue.ChangeVisibility(message.receipt, delay);
    if (!changed.ok()) spdlog::warn("{} worker: rescheduling message {}: {}", pool, message.id, changed.ToString());
    metrics_.messages.Increment({pool, "retry"});
    return;
  }
  spdlog::error("{} worker: message {} failed permanently, dead-lettered: {}", pool, message.id, status.ToString());
  Status buried = queue.DeadLetter(message.receipt);
  if (!buried.ok()) spdlog::warn("{} worker: dead-lettering message {}: {}", pool, message.id, buried.ToString());
  metrics_.messages.Increment({pool, "dead_letter"});
}

void QueueWorkers::Requeue(ports::Queue& queue, const ports::ReceivedMessage& message, const Status& status) {
  const std::string& pool = options_.name;
  auto sent = queue.Send(message.body);
  if (!sent.ok()) {
    // Kept where an operator sees it (and can redrive it) rather than lost.
    spdlog::error(
        "{} worker: message {} failed on its last delivery during an outage ({}) and could not be queued "
        "again ({}); dead-lettered",
        pool, message.id, status.ToString(), sent.status().ToString());
    Status buried = queue.DeadLetter(message.receipt);
    if (!buried.ok()) spdlog::warn("{} worker: dead-lettering message {}: {}", pool, message.id, buried.ToString());
    metrics_.messages.Increment({pool, "dead_letter"});
    return;
  }
  // Not deleted (a crash, a stale receipt): it is also delivered again, a duplicate every
  // operation on these queues tolerates; never a loss.
  Status deleted = queue.Delete(message.receipt);
  if (!deleted.ok()) spdlog::warn("{} worker: deleting message {}: {}", pool, message.id, deleted.ToString());
  spdlog::warn(
      "{} worker: message {} failed on its last delivery ({} of {}) while the service is down; queued again "
      "as {} with its deliveries starting over: {}",
      pool, message.id, message.receive_count, options_.max_receives, *sent, status.ToString());
  metrics_.messages.Increment({pool, "requeued"});
}

void QueueWorkers::Run() {
  // A unit of work around `step` when the pool has a batch scope (queue_workers.h).
  // False when the unit could not be committed (its writes are gone).
  auto scoped = [this](const char* what, const std::function<void()>& step) -> bool {
    std::unique_ptr<BatchScope> scope;
    if (options_.batch_scope) {
      auto opened = options_.batch_scope();
      if (opened.ok()) {
        scope = std::move(*opened);
      } else {
        spdlog::warn("{} worker: no batch scope for the {}: {}", options_.name, what, opened.status().ToString());
      }
    }
    step();
    if (scope == nullptr) return true;
    Status committed = scope->Commit();
    if (committed.ok()) return true;
    spdlog::warn("{} worker: committing the {} failed; its messages come back: {}", options_.name, what,
                 committed.ToString());
    return false;
  };
  while (!stopping_.load()) {
    if (StoreTrouble() || (options_.outage && Paused())) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, options_.idle_poll, [this] { return stopping_.load(); });
      continue;
    }
    bool worked = false;
    for (ports::Queue* queue : queues_) {
      std::vector<ports::ReceivedMessage> batch;
      const bool received_ok = scoped("receives", [&] {
        while (batch.size() < options_.batch && !stopping_.load()) {
          const std::size_t want = std::min(ports::kMaxQueueBatch, options_.batch - batch.size());
          auto received = queue->Receive(want, options_.visibility_timeout);
          if (!received.ok()) {
            spdlog::warn("{} worker: receive failed: {}", options_.name, received.status().ToString());
            break;
          }
          const std::size_t got = received->size();
          for (auto& m : *received) batch.push_back(std::move(m));
          if (got < want) break;
        }
      });
      if (!received_ok) batch.clear();  // not leased after all: another worker may have them
      if (batch.empty()) continue;
      worked = true;
      // The first step outside any unit of work; a message received above and not disposed of
      // below (a failed commit, a crash) is delivered again after its visibility timeout.
      auto apply = handler_(batch);
      std::vector<Status> results;
      // Outage failures on their last delivery: dead-lettered or queued again once the probe has
      // said whether the service is down (WorkerOptions::outage). They stay leased meanwhile, and
      // the pool receives nothing while it probes.
      std::vector<std::size_t> held;
      (void)scoped("round", [&] {
        results = apply();
        results.resize(batch.size(), InternalError("handler gave no result"));
        for (std::size_t i = 0; i < batch.size(); ++i) {
          const bool last = options_.max_receives > 0 && batch[i].receive_count >= options_.max_receives;
          if (last && options_.outage && !results[i].ok() && results[i].IsRetryable() && options_.outage(results[i])) {
            held.push_back(i);
            continue;
          }
          Dispose(*queue, batch[i], results[i]);
        }
      });
      // After the round's unit (the probe is a network call); a store failure is no outage.
      bool down = false;
      if (options_.outage && !(options_.store_trouble && options_.store_trouble())) {
        for (const Status& result : results) {
          if (!result.ok() && options_.outage(result)) {
            down = NoteOutage(result);
            break;
          }
        }
      }
      for (std::size_t i : held) {
        (void)scoped("requeue", [&] {
          if (down) {
            Requeue(*queue, batch[i], results[i]);
          } else {
            Dispose(*queue, batch[i], results[i]);
          }
        });
      }
      break;  // start again from the first (highest-priority) queue
    }
    if (!worked) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, options_.idle_poll, [this] { return stopping_.load(); });
    }
  }
}

}  // namespace pwrcell::runtime::serve
