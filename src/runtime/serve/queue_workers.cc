#include "runtime/serve/queue_workers.h"

#include <spdlog/spdlog.h>

#include <functional>
#include <utility>

namespace pwrcell::runtime::serve {

QueueWorkerMetrics::QueueWorkerMetrics(Metrics* registry)
    : messages(registry, "pwrcell_queue_messages_total",
               "Queue messages handled, by worker pool and outcome (done, retry, dead_letter)", {"pool", "outcome"}),
      pauses(registry, "pwrcell_queue_pool_pauses_total",
             "Outages of the service a worker pool calls that paused the pool's receiving", {"pool"}),
      probes(registry, "pwrcell_queue_pool_probes_total", "Probes of a paused pool's service, by outcome (ok, failed)",
             {"pool", "outcome"}) {}

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

Duration QueueWorkers::RetryDelay(const WorkerOptions& options, int receive_count) {
  Duration delay = options.retry_base;
  for (int i = 1; i < receive_count && delay < options.retry_max; ++i) delay *= 2;
  return std::min(delay, options.retry_max);
}

void QueueWorkers::NoteOutage(const Status& status) {
  {
    std::lock_guard lock(mutex_);
    if (paused_ || probing_) return;  // already known, or being found out by another worker
    probing_ = true;
  }
  // One operation failing is not an outage: the service is down only if the probe fails too.
  const Status probed = options_.probe ? options_.probe() : status;
  const bool answered = probed.ok() || !options_.outage(probed);
  std::lock_guard lock(mutex_);
  probing_ = false;
  metrics_.probes.Increment({options_.name, answered ? "ok" : "failed"});
  if (answered) return;
  paused_ = true;
  pause_ = options_.pause_base;
  resume_at_ = std::chrono::steady_clock::now() + pause_;
  metrics_.pauses.Increment({options_.name});
  spdlog::warn("{} worker: the service is down ({}); pausing the pool, probing every {} ms up to {} s", options_.name,
               probed.ToString(), std::chrono::duration_cast<std::chrono::milliseconds>(pause_).count(),
               std::chrono::duration_cast<std::chrono::seconds>(options_.pause_max).count());
}

bool QueueWorkers::Paused() {
  {
    std::lock_guard lock(mutex_);
    if (!paused_) return false;
    if (probing_ || std::chrono::steady_clock::now() < resume_at_) return true;
    probing_ = true;  // this worker probes; the others keep waiting
  }
  const Status probed = options_.probe ? options_.probe() : Status::Ok();
  // Any answer that is not itself an outage means the service is there (a refusal of the probe
  // is for the messages' own handling to report): never stay paused for a reason probing cannot
  // end.
  const bool answered = probed.ok() || !options_.outage(probed);
  std::lock_guard lock(mutex_);
  probing_ = false;
  metrics_.probes.Increment({options_.name, answered ? "ok" : "failed"});
  if (!probed.ok() && answered) {
    spdlog::warn("{} worker: the probe was refused ({}); resuming anyway", options_.name, probed.ToString());
  }
  if (answered) {
    paused_ = false;
    spdlog::info("{} worker: the service answers again; the pool resumes", options_.name);
    wake_.notify_all();
    return false;
  }
  pause_ = std::min(pause_ * 2, options_.pause_max);
  resume_at_ = std::chrono::steady_clock::now() + pause_;
  spdlog::debug("{} worker: probe failed ({}); next in {} ms", options_.name, probed.ToString(),
                std::chrono::duration_cast<std::chrono::milliseconds>(pause_).count());
  return true;
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
    const Duration delay = RetryDelay(options_, message.receive_count);
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
      (void)scoped("round", [&] {
        results = apply();
        for (std::size_t i = 0; i < batch.size(); ++i) {
          Dispose(*queue, batch[i], i < results.size() ? results[i] : InternalError("handler gave no result"));
        }
      });
      // After the round's unit (the probe is a network call); a store failure is no outage.
      if (options_.outage && !(options_.store_trouble && options_.store_trouble())) {
        for (const Status& result : results) {
          if (!result.ok() && options_.outage(result)) {
            NoteOutage(result);
            break;
          }
        }
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
