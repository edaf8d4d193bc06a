// A tiny HTTP/1.1 server for tests that must see the exact bytes a client sends (the SigV4 tests):
// one thread on 127.0.0.1 at a free port reads each request (the head, then Content-Length bytes of
// body), keeps it, and answers with what its responder returns (200 "{}" by default), closing the
// connection after every answer. It does not send "100 Continue": a client that waits for one
// sends its body when its own wait ends.
//
// Thread-safety: requests() may be called from the test thread while the server runs; the responder
// runs on the server's thread. Header-only so that every test file of tests/aws can use it without
// another library.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace pwrcell::aws_test {

inline std::string AsciiLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// One request as it arrived.
struct CapturedRequest {
  std::string raw;  // every byte received: head and body
  std::string method;
  std::string target;  // the request-target: "/", "/?a=b"
  // In arrival order; names as sent; values as sent after the colon (untrimmed). A folded
  // continuation line (obsolete, starts with a blank) is appended to the previous value after a
  // '\n', so a verifier can see it.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Every value of the header `name` (case-insensitive), in order.
  std::vector<std::string> Values(std::string_view name) const {
    std::vector<std::string> values;
    const std::string wanted = AsciiLower(name);
    for (const auto& [header, value] : headers) {
      if (AsciiLower(header) == wanted) values.push_back(value);
    }
    return values;
  }
  // The first value of `name` without surrounding blanks, or nullopt.
  std::optional<std::string> Header(std::string_view name) const {
    auto values = Values(name);
    if (values.empty()) return std::nullopt;
    std::string_view value = values.front();
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    return std::string(value);
  }
};

// Parses "METHOD target HTTP/1.1\r\nName: value\r\n...\r\n\r\nbody" (CRLF or LF line ends). The
// target is everything between the first and the last space of the request line, so that a test
// vector's "GET /example space/ HTTP/1.1" keeps its space.
inline CapturedRequest ParseHttpRequest(std::string_view text) {
  CapturedRequest request;
  request.raw = std::string(text);
  std::size_t pos = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= text.size()) return false;
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = end + 1;
    return true;
  };
  std::string_view line;
  if (!next_line(line)) return request;
  const std::size_t first_space = line.find(' ');
  const std::size_t last_space = line.rfind(' ');
  if (first_space != std::string_view::npos && last_space > first_space) {
    request.method = std::string(line.substr(0, first_space));
    request.target = std::string(line.substr(first_space + 1, last_space - first_space - 1));
  }
  while (next_line(line) && !line.empty()) {
    if ((line.front() == ' ' || line.front() == '\t') && !request.headers.empty()) {
      request.headers.back().second += "\n" + std::string(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    request.headers.emplace_back(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  if (pos < text.size()) request.body = std::string(text.substr(pos));
  return request;
}

struct CannedResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body = "{}";
};

class CaptureServer {
 public:
  using Responder = std::function<CannedResponse(const CapturedRequest&)>;

  explicit CaptureServer(Responder respond = {}) : respond_(std::move(respond)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      std::abort();  // a test machine without a loopback socket cannot run these tests at all
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  CaptureServer(const CaptureServer&) = delete;
  CaptureServer& operator=(const CaptureServer&) = delete;
  ~CaptureServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<CapturedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  // Waits up to 100 ms for `fd` to be readable.
  static bool Readable(int fd) {
    pollfd entry{fd, POLLIN, 0};
    return ::poll(&entry, 1, 100) > 0;
  }

  void Run() {
    while (!stop_) {
      if (!Readable(listen_fd_)) continue;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      Serve(fd);
      ::close(fd);
    }
  }

  void Serve(int fd) {
    std::string data;
    std::size_t head_end = std::string::npos;
    std::size_t wanted = std::string::npos;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      if (head_end != std::string::npos && data.size() >= wanted) break;
      if (!Readable(fd)) continue;
      char buffer[65536];
      const ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
      if (got <= 0) return;
      data.append(buffer, static_cast<std::size_t>(got));
      if (head_end == std::string::npos && (head_end = data.find("\r\n\r\n")) != std::string::npos) {
        const CapturedRequest head = ParseHttpRequest(std::string_view(data).substr(0, head_end + 2));
        const auto length = head.Header("Content-Length");
        wanted = head_end + 4 + (length ? std::strtoull(length->c_str(), nullptr, 10) : 0);
      }
    }
    if (head_end == std::string::npos || data.size() < wanted) return;
    CapturedRequest request = ParseHttpRequest(std::string_view(data).substr(0, head_end + 2));
    request.raw = data;
    request.body = data.substr(head_end + 4);
    const CannedResponse response = respond_ ? respond_(request) : CannedResponse{};
    {
      std::lock_guard lock(mutex_);
      requests_.push_back(std::move(request));
    }
    std::string answer = "HTTP/1.1 " + std::to_string(response.status) + " Canned\r\n";
    for (const auto& [name, value] : response.headers) answer += name + ": " + value + "\r\n";
    answer += "Content-Length: " + std::to_string(response.body.size()) + "\r\nConnection: close\r\n\r\n";
    answer += response.body;
    std::size_t sent = 0;
    while (sent < answer.size()) {
      const ssize_t wrote = ::send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
      if (wrote <= 0) return;
      sent += static_cast<std::size_t>(wrote);
    }
  }

  Responder respond_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<CapturedRequest> requests_;
  std::thread thread_;
};

}  // namespace pwrcell::aws_test
