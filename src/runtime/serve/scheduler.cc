#include "runtime/serve/scheduler.h"

#include <spdlog/spdlog.h>

namespace pwrcell::runtime::serve {

Scheduler::~Scheduler() {
  Stop();
}

void Scheduler::Add(std::string name, Duration interval, Task task, Duration initial_delay, bool quiet) {
  entries_.push_back(
      {std::move(name), interval, std::move(task), std::chrono::steady_clock::now() + initial_delay, quiet});
}

void Scheduler::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::Run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    Entry* due = nullptr;
    for (auto& e : entries_) {
      if (due == nullptr || e.next < due->next) due = &e;
    }
    if (due == nullptr) {
      wake_.wait(lock, [this] { return stopping_; });
      break;
    }
    if (due->next > now) {
      wake_.wait_until(lock, due->next, [this] { return stopping_; });
      continue;
    }
    lock.unlock();
    const auto level = due->quiet ? spdlog::level::debug : spdlog::level::info;
    spdlog::log(level, "schedule: {} started", due->name);
    const auto started = std::chrono::steady_clock::now();
    Status status = due->task();
    if (!status.ok()) spdlog::warn("schedule: {} failed: {}", due->name, status.ToString());
    spdlog::log(
        level, "schedule: {} done in {} ms", due->name,
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    lock.lock();
    // Fixed rate, but never a burst of catch-up runs after a slow task.
    due->next = std::max(due->next + due->interval, std::chrono::steady_clock::now());
  }
}

}  // namespace pwrcell::runtime::serve
