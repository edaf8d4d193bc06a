// Starts one of the project's simulators (concerto-sim, ces-sim) as a child process on a free
// port, reads the URL from its "... listening on http://HOST:PORT" line, and stops it (SIGTERM to
// its process group, then waitpid) when destroyed. Also a tiny JSON client for their admin APIs.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/http/http_client.h"
#include "common/status.h"

namespace pwrcell::integration {

// Paths from the build (compile definitions).
std::string SimBinary(const std::string& name);  // <build>/bin/<name>
std::string SourcePath(const std::string& relative);

class SimProcess {
 public:
  // Runs `argv` (argv[0] is the program) and waits up to `timeout_ms` for its banner line.
  // Errors: kUnavailable when it exits or stays silent (the message holds its stderr's tail).
  static Result<std::unique_ptr<SimProcess>> Start(std::vector<std::string> argv, int timeout_ms = 20000);
  ~SimProcess();
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  const std::string& url() const { return url_; }
  // SIGTERM, wait up to 5 s, then SIGKILL. Idempotent. Returns the exit status of waitpid.
  int Stop();

 private:
  SimProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string url_;
  std::string stderr_path_;
};

// JSON over the simulators' admin APIs (no credentials).
class AdminClient {
 public:
  explicit AdminClient(std::string base_url) : base_url_(std::move(base_url)) {}
  // The answer's JSON (null for an empty body); fails the calling test on transport errors.
  nlohmann::json Get(const std::string& path, long* status = nullptr) const;
  nlohmann::json Post(const std::string& path, const nlohmann::json& body, long* status = nullptr) const;

 private:
  nlohmann::json Send(adapters::HttpMethod method, const std::string& path, const nlohmann::json* body,
                      long* status) const;
  std::string base_url_;
  adapters::HttpClient http_;
};

}  // namespace pwrcell::integration
