// The schedule of `serve`: runs each periodic task (registrar poll, CES state poll, liveness
// sweep, simulated telemetry) on one thread, first at start, then every interval. A task's error
// is logged and the task runs again at its next time. Time is the steady clock (intervals, not
// wall time). Stop() waits for a running task to finish.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pwrcell::runtime::serve {

class Scheduler {
 public:
  using Task = std::function<Status()>;
  ~Scheduler();

  // Before Start(). `initial_delay`: wait this long before the first run. Each run's start and end
  // (with its duration) are logged at info level, or at debug level with `quiet` (a task that runs
  // every second): how long a sweep takes at fleet size is worth seeing, and bench/crash_loop.py
  // times its kill -9 in the middle of a liveness sweep from these lines.
  void Add(std::string name, Duration interval, Task task, Duration initial_delay = Duration::zero(),
           bool quiet = false);
  void Start();
  void Stop();  // idempotent

 private:
  struct Entry {
    std::string name;
    Duration interval;
    Task task;
    std::chrono::steady_clock::time_point next;
    bool quiet;
  };
  void Run();

  std::vector<Entry> entries_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace pwrcell::runtime::serve
