#include "sim_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace pwrcell::integration {

#ifndef PWRCELL_SIM_BIN_DIR
#error "PWRCELL_SIM_BIN_DIR must name the directory of the simulator launchers"
#endif
#ifndef PWRCELL_SOURCE_DIR
#error "PWRCELL_SOURCE_DIR must name the source tree"
#endif

std::string SimBinary(const std::string& name) { return std::string(PWRCELL_SIM_BIN_DIR) + "/" + name; }
std::string SourcePath(const std::string& relative) { return std::string(PWRCELL_SOURCE_DIR) + "/" + relative; }

namespace {

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

}  // namespace

Result<std::unique_ptr<SimProcess>> SimProcess::Start(std::vector<std::string> argv, int timeout_ms) {
  std::unique_ptr<SimProcess> sim(new SimProcess());
  char path_template[] = "/tmp/pwrcell-sim-stderr-XXXXXX";
  const int stderr_fd = mkstemp(path_template);
  if (stderr_fd < 0) return UnavailableError("mkstemp failed");
  sim->stderr_path_ = path_template;

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return UnavailableError("pipe failed");
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) return UnavailableError("fork failed");
  if (pid == 0) {
    setpgid(0, 0);  // its own group: Stop() reaches a launcher's children too
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(stderr_fd, STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  close(stderr_fd);
  sim->pid_ = pid;
  sim->stdout_fd_ = pipe_fds[0];

  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (line.find('\n') == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd fd{sim->stdout_fd_, POLLIN, 0};
    if (poll(&fd, 1, static_cast<int>(left)) <= 0) continue;
    char buffer[512];
    const ssize_t n = read(sim->stdout_fd_, buffer, sizeof buffer);
    if (n <= 0) break;  // exited
    line.append(buffer, static_cast<std::size_t>(n));
  }
  const auto at = line.find("listening on ");
  const auto end = line.find('\n');
  if (at == std::string::npos || end == std::string::npos) {
    sim->Stop();
    return UnavailableError(argv[0] + " did not start; stdout: '" + line + "'; stderr: " + Tail(sim->stderr_path_));
  }
  sim->url_ = line.substr(at + 13, end - at - 13);
  while (!sim->url_.empty() && (sim->url_.back() == '\r' || sim->url_.back() == ' ')) sim->url_.pop_back();
  return sim;
}

int SimProcess::Stop() {
  int status = 0;
  if (pid_ > 0) {
    kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    pid_t done = 0;
    while ((done = waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (done == 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  if (stdout_fd_ >= 0) {
    close(stdout_fd_);
    stdout_fd_ = -1;
  }
  if (!stderr_path_.empty()) {
    unlink(stderr_path_.c_str());
    stderr_path_.clear();
  }
  return status;
}

SimProcess::~SimProcess() { Stop(); }

nlohmann::json AdminClient::Get(const std::string& path, long* status) const {
  return Send(adapters::HttpMethod::kGet, path, nullptr, status);
}

nlohmann::json AdminClient::Post(const std::string& path, const nlohmann::json& body, long* status) const {
  return Send(adapters::HttpMethod::kPost, path, &body, status);
}

nlohmann::json AdminClient::Send(adapters::HttpMethod method, const std::string& path, const nlohmann::json* body,
                                 long* status) const {
  adapters::HttpRequest request;
  request.method = method;
  request.url = base_url_ + path;
  request.timeout = std::chrono::seconds(10);
  if (body != nullptr) {
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = body->dump();
  }
  auto response = http_.Send(request);
  EXPECT_TRUE(response.ok()) << response.status().ToString();
  if (!response.ok()) return nullptr;
  if (status != nullptr) *status = response->status;
  if (response->body.empty()) return nullptr;
  auto parsed = nlohmann::json::parse(response->body, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << "admin " << path << " answered: " << response->body;
  return parsed;
}

}  // namespace pwrcell::integration
