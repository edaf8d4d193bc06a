// Internal to pwrcell_runtime_http: one HTTP server bound to one address, with JSON error bodies
// and 405 for known paths asked with another method. IngestServer and AdminServer are built on it;
// nothing outside this directory (and its tests) includes it.
//
// The connections are served by GNU libmicrohttpd's epoll event loop (a few I/O threads), not by
// a thread per connection: an idle keep-alive connection or a client that sends its header one
// byte a second costs a file descriptor and a small buffer, never a worker. Route handlers run on
// a separate pool of worker threads once a request has fully arrived (its connection is
// suspended meanwhile), so a handler may block (an fsync) without stalling other connections.
// Handlers keep cpp-httplib's Request and Response types, used here as plain values: the
// handler code and its tests did not change when the transport did.
//
// Limits (Options): a cap on open connections (at it, a new connection makes room by closing the
// connection idle longest, else one still sending its headers, else it is accepted and closed at
// once), an optional cap per client address, a real listen backlog, and three deadlines enforced
// by a reaper thread: `idle_timeout` with no request started on a connection, then
// `header_timeout` from the request line to the end of the headers (a slowloris), then
// `body_timeout` for the body. A connection past its deadline is shut down.
//
// Request framing and size, answered without a handler, {"error": ...} (or ErrorReply's shape),
// with Connection: close where the rest of the connection cannot be trusted:
//   431 request line and headers over `max_header_bytes` in total (libmicrohttpd answers 431
//       itself for a header that does not fit its per-connection buffer, kConnectionMemoryBytes);
//   400 more than one Content-Length header, identical or not (RFC 9112 section 6.3 lets a
//       server take identical ones; refusing them all leaves no room for a proxy in front to
//       read the framing differently: request smuggling), or Transfer-Encoding together with
//       Content-Length (section 6.3: such a message may be smuggling; it is refused and the
//       connection closed);
//   413 a body over `max_body_bytes`.
// Every refusal and every connection closed by a limit is counted in
// pwrcell_http_refused_total{server, reason} and logged at info (at most one line a second per
// reason, with the number left out meanwhile), with sizes and counts, never a header's value.
//
// TLS (UseTls): the same server speaks HTTPS only, through libmicrohttpd's GnuTLS support, TLS
// 1.2 and 1.3, from a PEM certificate chain and key held in memory.
//
// Lifecycle: register routes, Start() once, Stop() (also from the destructor). Not restartable.
// Thread-safety: Start() and Stop() are called by the owner, not concurrently with each other;
// route handlers run on the worker threads, several at once.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace pwrcell::runtime::http {

// Sends `body` with `status` as compact JSON. Never throws: invalid UTF-8 in strings (a device
// name, a client's text echoed in an error) is replaced by U+FFFD.
void ReplyJson(httplib::Response& res, int status, const nlohmann::json& body);

// Sends {"error": message} with `status`.
void ReplyError(httplib::Response& res, int status, const std::string& message);

// The token of "Authorization: Bearer <token>" (scheme case-insensitive); empty when absent.
std::string BearerToken(const httplib::Request& req);

// Raises this process's soft RLIMIT_NOFILE to its hard limit (once; later calls return the
// result of the first). Returns the soft limit in effect afterwards.
std::size_t RaiseOpenFileLimit();

// The metrics every Listener shares, declared once (common/metrics.h).
//   pwrcell_http_refused_total{server="ingest|admin", reason}: requests refused and connections
//   closed by a limit; reason = headers_too_large, duplicate_content_length,
//   length_with_transfer_encoding, malformed (a request libmicrohttpd refused itself, status 400
//   or 414), body_too_large, too_many_records (ingest), connection_limit (closed at accept),
//   evicted (an idle or slow-header connection closed to make room for a new one), idle_timeout,
//   header_timeout, body_timeout.
struct ListenerMetrics {
  explicit ListenerMetrics(Metrics* registry);
  Counter<2> refused;  // {server, reason}
};

class Listener {
 public:
  struct Options {
    std::string name;  // "ingest", "admin": names the server in logs
    // Threads that run route handlers; a request waits for a free one once fully received.
    std::size_t worker_threads = 8;
    // Threads of the event loop (reading and writing sockets); 1 or more.
    std::size_t io_threads = 1;
    // Request bodies larger than this are answered 413 without calling a handler: at once when
    // declared (Content-Length), after draining them when streamed (chunked).
    std::size_t max_body_bytes = 1024 * 1024;
    // The request line and headers (names, values and their separators) at most, in total;
    // answered 431 over it. Must be below kConnectionMemoryBytes, which also holds the headers'
    // bookkeeping.
    std::size_t max_header_bytes = 16 * 1024;
    // Open connections at most (lowered to fit RLIMIT_NOFILE); one more is closed at accept.
    std::size_t max_connections = 1024;
    // Open connections per client address at most; 0: no per-address cap.
    std::size_t max_connections_per_ip = 0;
    // The listen(2) backlog (the kernel caps it at net.core.somaxconn).
    int listen_backlog = 1024;
    // A connection with no request started for this long is closed (idle keep-alive).
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
    // From a request's first line to the end of its headers, at most.
    std::chrono::milliseconds header_timeout{std::chrono::seconds(10)};
    // From the end of the headers to the end of the body, at most.
    std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};
    // Where pwrcell_http_refused_total is counted; nullptr: nowhere.
    Metrics* metrics = nullptr;
  };

  // libmicrohttpd's buffer per connection (MHD_OPTION_CONNECTION_MEMORY_LIMIT): the request line
  // and headers must fit in it with their bookkeeping, else libmicrohttpd answers 431 itself.
  static constexpr std::size_t kConnectionMemoryBytes = 32 * 1024;
  // Spare capacity after a request body whose length is declared: a parser that reads past the
  // end in blocks (simdjson needs 64 bytes) parses it in place instead of copying it.
  static constexpr std::size_t kBodyPadding = 64;

  // Called for every response just before it is written, with its final status (also for the
  // responses the server makes itself: 404, 405, 413, 503 while stopping, and 400 for a request
  // libmicrohttpd refused as malformed, whose method and path are then unknown).
  using ResponseObserver = std::function<void(const httplib::Request&, const httplib::Response&)>;

  // Makes the body of an error answer the server makes itself (404, 405, 413, 503 while
  // stopping, 500 after a handler threw), for paths whose clients expect a shape of their own;
  // the default is ReplyError's {"error": message}. Called with whatever is known of the request
  // (at least its path and headers, except for a request libmicrohttpd refused as malformed).
  using ErrorReply =
      std::function<void(const httplib::Request& req, httplib::Response& res, int status, const std::string& message)>;

  explicit Listener(Options options);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Route registration; only before Start(). `pattern` is a regular expression over the whole
  // (URL-decoded) path; its groups land in Request::matches. A path served for some methods
  // answers 405 to the others. HEAD is served by the GET handler, without the body.
  void Get(const std::string& pattern, httplib::Server::Handler handler);
  // The body has been received in full, within max_body_bytes, before the handler runs: it is
  // Request::body (with kBodyPadding spare capacity when its length was declared), and the
  // ContentReader hands the same bytes over in one piece, for handlers written for a reader.
  void Post(const std::string& pattern, httplib::Server::HandlerWithContentReader handler);
  void SetResponseObserver(ResponseObserver observer);
  void SetErrorReply(ErrorReply reply);
  // Serve HTTPS with this PEM certificate chain (server certificate first) and PEM private key;
  // only before Start(). Start() fails when libmicrohttpd was built without TLS or refuses them.
  void UseTls(std::string certificate_pem, std::string private_key_pem);
  bool tls() const { return !tls_certificate_pem_.empty(); }

  // Binds `address` (port 0: a free port), listens and starts the event loop; returns once it
  // runs. Errors: kUnavailable "cannot listen on <host:port>: <reason>" (address in use, not
  // available, permission denied, unresolvable host) or when the event loop cannot start;
  // kFailedPrecondition when called twice, or with TLS when this libmicrohttpd has no TLS
  // support; kInvalidArgument when libmicrohttpd refuses the TLS certificate or key (its reason).
  Status Start(const config::ListenAddress& address);

  // Stops accepting, lets the requests whose handler runs finish and their answers go out
  // (requests arriving meanwhile are answered 503 with Connection: close), then closes every
  // connection and joins the threads. Idempotent; a no-op before Start().
  void Stop();

  // The bound port; 0 before Start() succeeded.
  int port() const { return port_; }

  // Open connections now (for tests and logs).
  std::size_t open_connections() const;

  // Counts a refusal in pwrcell_http_refused_total{server, reason} and logs `detail` at info,
  // rate-limited per reason. For refusals a route handler makes (too_many_records); thread-safe.
  // `detail` must hold no secret (no header value, no body).
  void CountRefusal(const std::string& reason, const std::string& detail) const;

 private:
  struct Route {
    std::regex pattern;
    std::string method;
    httplib::Server::Handler get;
    httplib::Server::HandlerWithContentReader post;
  };
  struct Connection;
  struct Exchange;
  struct Callbacks;
  friend struct Callbacks;

  // The methods allowed on `path`, comma-separated ("GET, HEAD"); empty when no route matches.
  std::string AllowedMethods(const std::string& path) const;
  // Runs the matching handler, or makes the 404 / 405 / 500 answer. On a worker thread.
  void Serve(Exchange& exchange);
  void Observe(const httplib::Request& req, const httplib::Response& res) const;
  void ReplyServerError(const httplib::Request& req, httplib::Response& res, int status,
                        const std::string& message) const;
  void RunWorker();
  void RunReaper();
  void Enqueue(std::function<void()> task);

  Options options_;
  const ListenerMetrics metrics_;
  std::vector<Route> routes_;
  ResponseObserver observer_;
  ErrorReply error_reply_;
  std::string tls_certificate_pem_;
  std::string tls_private_key_pem_;
  // libmicrohttpd's last log line (its reason when the daemon does not start).
  mutable std::mutex log_mutex_;
  std::string last_log_;  // guarded by log_mutex_
  // Refusal log lines: per reason, when the last was written and how many were left out since.
  struct RefusalLog {
    std::chrono::steady_clock::time_point last{};
    std::size_t suppressed = 0;
  };
  mutable std::unordered_map<std::string, RefusalLog> refusal_log_;  // guarded by log_mutex_
  int port_ = 0;
  bool started_ = false;
  std::size_t max_connections_ = 0;  // options_.max_connections within RLIMIT_NOFILE; set by Start()
  MHD_Daemon* daemon_ = nullptr;
  int listen_fd_ = -1;

  // Open connections, for the reaper.
  mutable std::mutex connections_mutex_;
  std::unordered_set<Connection*> connections_;  // guarded by connections_mutex_
  std::condition_variable reaper_wake_;
  bool reaper_exit_ = false;  // guarded by connections_mutex_

  // Work for the handler threads, and the count of requests handed to a handler whose answer is
  // not written yet (Stop() waits for it to reach 0).
  std::mutex work_mutex_;
  std::condition_variable work_changed_;
  std::deque<std::function<void()>> work_;  // guarded by work_mutex_
  std::size_t in_flight_ = 0;               // guarded by work_mutex_
  std::size_t handlers_pending_ = 0;        // dispatched, handler not finished; guarded by work_mutex_
  bool stopping_ = false;                   // guarded by work_mutex_
  bool workers_exit_ = false;               // guarded by work_mutex_
  std::vector<std::thread> workers_;
  std::thread reaper_;
};

}  // namespace pwrcell::runtime::http
