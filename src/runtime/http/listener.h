// Internal to pwrcell_runtime_http: one cpp-httplib server bound to one address, with its accept
// loop on its own thread, JSON error bodies, and 405 for known paths asked with another method.
// IngestServer and AdminServer are built on it; nothing outside this directory includes it (it
// pulls in <httplib.h>, whose compile definitions must match the installed library).
//
// Lifecycle: register routes, Start() once, Stop() (also from the destructor). Not restartable.
// Thread-safety: Start() and Stop() are called by the owner, not concurrently with each other;
// route handlers run on the server's worker threads, several at once.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "config/config.h"

namespace pwrcell::runtime::http {

// Sends `body` with `status` as compact JSON. Never throws: invalid UTF-8 in strings (a device
// name, a client's text echoed in an error) is replaced by U+FFFD.
void ReplyJson(httplib::Response& res, int status, const nlohmann::json& body);

// Sends {"error": message} with `status`.
void ReplyError(httplib::Response& res, int status, const std::string& message);

class Listener {
 public:
  struct Options {
    std::string name;  // "ingest", "admin": names the server in logs
    std::size_t worker_threads = 8;
    // Request bodies declared (Content-Length) larger than this are answered 413 by httplib
    // before any handler runs; the body is drained, not buffered.
    std::size_t max_body_bytes = 1024 * 1024;
  };

  // Called for every response just before it is written, with its final status (also for the
  // responses httplib makes itself: 404, 413, 400 for an unparsable request).
  using ResponseObserver = std::function<void(const httplib::Request&, const httplib::Response&)>;

  explicit Listener(Options options);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Route registration; only before Start(). `pattern` is a regular expression over the whole
  // (URL-decoded) path. A path served for some methods answers 405 to the others.
  void Get(const std::string& pattern, httplib::Server::Handler handler);
  void Post(const std::string& pattern, httplib::Server::HandlerWithContentReader handler);
  void SetResponseObserver(ResponseObserver observer);

  // Binds `address` (port 0: a free port) and starts the accept loop on its own thread; returns
  // once the loop runs. Errors: kUnavailable "cannot listen on <host:port>: <reason>" (address in
  // use, not available, permission denied, unresolvable host); kFailedPrecondition when called
  // twice.
  Status Start(const config::ListenAddress& address);

  // Stops accepting, lets requests in progress finish (an idle keep-alive connection is closed
  // within the keep-alive timeout) and joins the thread. Idempotent; a no-op before Start().
  void Stop();

  // The bound port; 0 before Start() succeeded.
  int port() const { return port_.load(); }

 private:
  struct Route {
    std::regex pattern;
    std::string method;
  };
  // The methods allowed on `path`, comma-separated ("GET, HEAD"); empty when no route matches.
  std::string AllowedMethods(const std::string& path) const;
  httplib::Server::HandlerResponse OnError(const httplib::Request& req, httplib::Response& res) const;

  Options options_;
  httplib::Server server_;
  std::vector<Route> routes_;
  ResponseObserver observer_;
  std::thread thread_;
  std::atomic<int> port_{0};
  std::atomic<bool> loop_finished_{false};
  bool started_ = false;
};

}  // namespace pwrcell::runtime::http
