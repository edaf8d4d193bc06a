#include "runtime/http/listener.h"

#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

namespace pwrcell::runtime::http {
namespace {

using Clock = std::chrono::steady_clock;

// A declared body this much over the limit is refused at once (the connection is then closed, as
// its unread body would desynchronize it); a smaller one is read and dropped first, so that the
// client, which writes its whole body before it reads, gets the 413 and keeps its connection.
constexpr std::size_t kDrainFactor = 16;

// How long Stop() waits for answers already made to reach their clients.
constexpr auto kStopFlushTimeout = std::chrono::seconds(5);

// libmicrohttpd's own connection limit is ours plus this (per I/O thread, as it divides its limit
// among them), so that ours, which closes what is over it, acts first.
constexpr std::size_t kAcceptSlack = 16;

// File descriptors kept free of HTTP connections (the store, the clients, logs).
constexpr std::size_t kReservedDescriptors = 256;

// Connections closed to make room that libmicrohttpd has not closed yet, at most; beyond it a new
// connection over the cap is closed at accept instead (below libmicrohttpd's slack, kAcceptSlack).
constexpr std::size_t kMaxClosingForRoom = kAcceptSlack / 2;

// How much of a request's path a refusal's log line shows.
constexpr std::size_t kLoggedPathChars = 120;

// The marker the URI callback hands MHD for a request whose headers are not complete yet; the
// access handler replaces it with an Exchange.
char request_started_marker;

std::string BindFailureReason(int error) {
  switch (error) {
    case EADDRINUSE:
      return "address in use";
    case EADDRNOTAVAIL:
      return "address not available on this host";
    case EACCES:
      return "permission denied";
    case 0:
      return "the host does not resolve to a bindable address";
    default:
      return std::error_code(error, std::generic_category()).message();
  }
}

// A bound, listening, non-blocking TCP socket on `address`, or the errno of the failure (0 when
// the host does not resolve). SO_REUSEADDR allows a quick restart (TIME_WAIT); SO_REUSEPORT is
// not set, so that a port in use fails loudly instead of being shared with another process.
Result<int> OpenListeningSocket(const config::ListenAddress& address, int backlog, int* error) {
  *error = 0;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  if (getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return UnavailableError("unresolvable");
  }
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      *error = errno;
      continue;
    }
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
    *error = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd < 0) return UnavailableError("bind");
  *error = 0;
  return fd;
}

// `path` for a log line: at most kLoggedPathChars, control characters and non-ASCII bytes as '?',
// so that a client cannot forge or flood log lines through it.
std::string LoggablePath(const std::string& path) {
  std::string shown = path.substr(0, kLoggedPathChars);
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  if (path.size() > kLoggedPathChars) shown += "...";
  return shown;
}

int BoundPort(int fd) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) return 0;
  if (bound.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (bound.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return 0;
}

}  // namespace

void ReplyJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void ReplyError(httplib::Response& res, int status, const std::string& message) {
  ReplyJson(res, status, nlohmann::json{{"error", message}});
}

ListenerMetrics::ListenerMetrics(Metrics* registry)
    : refused(registry, "pwrcell_http_refused_total",
              "Requests refused and connections closed by a limit of the ingest or admin HTTP server: "
              "headers_too_large, duplicate_content_length, length_with_transfer_encoding, malformed, "
              "body_too_large, too_many_records, connection_limit, evicted, idle_timeout, header_timeout, "
              "body_timeout.",
              {"server", "reason"}) {}

std::string BearerToken(const httplib::Request& req) {
  const std::string authorization = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "bearer ";
  if (authorization.size() <= kBearer.size()) return "";
  std::string scheme = authorization.substr(0, kBearer.size());
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme != kBearer) return "";
  std::string token = authorization.substr(kBearer.size());
  token.erase(0, token.find_first_not_of(' '));
  return token;
}

std::size_t RaiseOpenFileLimit() {
  static const std::size_t limit = [] {
    rlimit files{};
    if (getrlimit(RLIMIT_NOFILE, &files) != 0) return std::size_t{1024};
    if (files.rlim_cur < files.rlim_max) {
      const rlim_t before = files.rlim_cur;
      files.rlim_cur = files.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &files) == 0) {
        spdlog::info("open file limit raised from {} to {}", before, files.rlim_cur);
      } else {
        files.rlim_cur = before;
      }
    }
    if (files.rlim_cur == RLIM_INFINITY) return std::numeric_limits<std::size_t>::max();
    return static_cast<std::size_t>(files.rlim_cur);
  }();
  return limit;
}

// One open connection, for the reaper. Its fields are guarded by connections_mutex_.
struct Listener::Connection {
  enum class Phase { kIdle, kHeader, kBody, kBusy };
  int fd = -1;
  Phase phase = Phase::kIdle;
  Clock::time_point since = Clock::now();
  bool reaped = false;
};

// One request from its headers to its answer. The MHD thread owns it, except between dispatch
// and resume, when one worker thread does; MHD's suspend / resume (a mutex inside) orders the two.
struct Listener::Exchange {
  MHD_Connection* connection = nullptr;
  httplib::Request request;
  httplib::Response response;
  bool too_large = false;
  bool close = false;               // answer with Connection: close (the framing is not trusted)
  std::size_t declared_length = 0;  // Content-Length, when declared and within max_body_bytes
  bool dispatched = false;
  bool answered = false;  // `response` is final
};

// libmicrohttpd's C callbacks; `cls` is the Listener.
struct Listener::Callbacks {
  static void LogFromMhd(void* cls, const char* format, va_list args) {
    auto& self = *static_cast<Listener*>(cls);
    char line[512];
    std::vsnprintf(line, sizeof(line), format, args);
    std::string text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    spdlog::debug("{} server: libmicrohttpd: {}", self.options_.name, text);
    std::lock_guard lock(self.log_mutex_);
    self.last_log_ = std::move(text);
  }

  static void SetPhase(Listener& self, MHD_Connection* mhd, Connection::Phase phase) {
    const MHD_ConnectionInfo* info = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (info == nullptr || info->socket_context == nullptr) return;
    auto* connection = static_cast<Connection*>(info->socket_context);
    std::lock_guard lock(self.connections_mutex_);
    connection->phase = phase;
    connection->since = Clock::now();
  }

  static void OnConnection(void* cls, MHD_Connection* mhd, void** socket_context, MHD_ConnectionNotificationCode code) {
    auto& self = *static_cast<Listener*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      auto* connection = new Connection();
      const MHD_ConnectionInfo* info = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
      if (info != nullptr) connection->fd = info->connect_fd;
      *socket_context = connection;
      std::lock_guard lock(self.connections_mutex_);
      self.connections_.insert(connection);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != nullptr) {
      // libmicrohttpd closes the descriptor only after this, so the reaper never shuts down a
      // descriptor number that has been reused.
      auto* connection = static_cast<Connection*>(*socket_context);
      {
        std::lock_guard lock(self.connections_mutex_);
        self.connections_.erase(connection);
      }
      delete connection;
      *socket_context = nullptr;
    }
  }

  // Over the cap, a new connection is closed as soon as it is accepted, rather than left in the
  // kernel's backlog until a slot frees (libmicrohttpd's own limit, set above ours, stops
  // accepting instead): the client learns at once, and can go elsewhere or retry.
  //
  // At the cap, the connection idle longest (no request started), else the one longest in its
  // headers, is shut down to make room, so that idle and slowloris connections cannot lock out a
  // new client; a connection receiving a body or being answered is never closed for room.
  static MHD_Result OnAccept(void* cls, const sockaddr*, socklen_t) {
    auto& self = *static_cast<Listener*>(cls);
    std::size_t open = 0;
    bool evicted = false;
    {
      std::lock_guard lock(self.connections_mutex_);
      open = self.connections_.size();
      if (open < self.max_connections_) return MHD_YES;
      std::size_t closing = 0;
      Connection* victim = nullptr;
      const auto before = [](const Connection* a, const Connection* b) {
        if (a->phase != b->phase) return a->phase == Connection::Phase::kIdle;
        return a->since < b->since;
      };
      for (Connection* connection : self.connections_) {
        if (connection->reaped) {
          ++closing;
          continue;
        }
        if (connection->fd < 0) continue;
        if (connection->phase != Connection::Phase::kIdle && connection->phase != Connection::Phase::kHeader) continue;
        if (victim == nullptr || before(connection, victim)) victim = connection;
      }
      if (open - closing < self.max_connections_) return MHD_YES;  // room is being made already
      if (victim != nullptr && closing < kMaxClosingForRoom) {
        // libmicrohttpd sees the end of the stream and closes it on its own thread.
        victim->reaped = true;
        shutdown(victim->fd, SHUT_RDWR);
        evicted = true;
      }
    }
    if (evicted) {
      self.CountRefusal("evicted", std::to_string(open) + " connections open (the cap), closed the one idle longest");
      return MHD_YES;
    }
    self.CountRefusal("connection_limit", std::to_string(open) + " connections open (the cap), closed a new one");
    return MHD_NO;
  }

  // The request line has arrived: the header deadline starts.
  static void* OnRequestLine(void* cls, const char*, MHD_Connection* mhd) {
    SetPhase(*static_cast<Listener*>(cls), mhd, Connection::Phase::kHeader);
    return &request_started_marker;
  }

  static void OnCompleted(void* cls, MHD_Connection* mhd, void** request_context, MHD_RequestTerminationCode) {
    auto& self = *static_cast<Listener*>(cls);
    if (*request_context == &request_started_marker) {
      // Never presented to us: libmicrohttpd answered it itself (a malformed request line or
      // header, headers over the buffer), if it answered at all.
      const MHD_ConnectionInfo* info = MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_HTTP_STATUS);
      if (info != nullptr && info->http_status > 0) {
        httplib::Response response;
        response.status = static_cast<int>(info->http_status);
        self.CountRefusal(response.status == 431 ? "headers_too_large" : "malformed",
                          "libmicrohttpd answered " + std::to_string(response.status) +
                              (response.status == 431
                                   ? " (a header over its " + std::to_string(kConnectionMemoryBytes) + "-byte buffer)"
                                   : " (a malformed request line or header)"));
        self.Observe(httplib::Request(), response);
      }
    } else if (*request_context != nullptr) {
      auto* exchange = static_cast<Exchange*>(*request_context);
      if (exchange->dispatched) {
        std::lock_guard lock(self.work_mutex_);
        --self.in_flight_;
        self.work_changed_.notify_all();
      }
      delete exchange;
    }
    *request_context = nullptr;
    SetPhase(self, mhd, Connection::Phase::kIdle);
  }

  // Queues exchange.response (already observed) on the MHD thread.
  static MHD_Result Respond(Listener& self, Exchange& exchange) {
    SetPhase(self, exchange.connection, Connection::Phase::kBusy);
    httplib::Response& res = exchange.response;
    MHD_Response* response = MHD_create_response_from_buffer(res.body.size(), res.body.data(), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) return MHD_NO;
    for (const auto& [name, value] : res.headers) {
      if (name == "Content-Length") continue;  // libmicrohttpd writes it
      MHD_add_response_header(response, name.c_str(), value.c_str());
    }
    bool stopping = false;
    {
      std::lock_guard lock(self.work_mutex_);
      stopping = self.stopping_;
    }
    if (stopping || exchange.too_large || exchange.close) MHD_add_response_header(response, "Connection", "close");
    const MHD_Result queued = MHD_queue_response(exchange.connection, static_cast<unsigned int>(res.status), response);
    MHD_destroy_response(response);
    return queued;
  }

  // Answers `status` with {"error": message} from the MHD thread, without a handler.
  static MHD_Result Refuse(Listener& self, Exchange& exchange, int status, const std::string& message) {
    self.ReplyServerError(exchange.request, exchange.response, status, message);
    if (status == 503) exchange.response.set_header("Retry-After", "1");
    self.Observe(exchange.request, exchange.response);
    return Respond(self, exchange);
  }

  // Refuses a request for a limit or its framing: counted, logged (method, path, `message`),
  // answered `status` with Connection: close.
  static MHD_Result RefuseForLimit(Listener& self, Exchange& exchange, int status, const std::string& reason,
                                   const std::string& message) {
    exchange.close = true;
    self.CountRefusal(reason, exchange.request.method + " " + LoggablePath(exchange.request.path) + " answered " +
                                  std::to_string(status) + ": " + message);
    return Refuse(self, exchange, status, message);
  }

  // The request's framing and header size, checked before any of its body is read; nullopt when
  // it may go on, else the refusal already queued.
  static std::optional<MHD_Result> CheckHeaders(Listener& self, Exchange& exchange) {
    const httplib::Request& req = exchange.request;
    // As on the wire: "METHOD path HTTP/1.1\r\n", "Name: value\r\n" each, the query's pairs.
    std::size_t header_bytes = req.method.size() + req.path.size() + req.version.size() + 4;
    for (const auto& [name, value] : req.headers) header_bytes += name.size() + value.size() + 4;
    for (const auto& [name, value] : req.params) header_bytes += name.size() + value.size() + 2;
    if (header_bytes > self.options_.max_header_bytes) {
      return RefuseForLimit(self, exchange, 431, "headers_too_large",
                            "request line and headers of " + std::to_string(header_bytes) + " bytes (" +
                                std::to_string(req.headers.size()) + " headers), more than the limit of " +
                                std::to_string(self.options_.max_header_bytes));
    }
    const std::size_t lengths = req.get_header_value_count("Content-Length");
    if (lengths > 1) {
      return RefuseForLimit(self, exchange, 400, "duplicate_content_length",
                            std::to_string(lengths) + " Content-Length headers: send exactly one");
    }
    if (lengths == 1 && req.has_header("Transfer-Encoding")) {
      return RefuseForLimit(self, exchange, 400, "length_with_transfer_encoding",
                            "both Transfer-Encoding and Content-Length: send one of them (RFC 9112 section 6.3)");
    }
    return std::nullopt;
  }

  static MHD_Result OnRequest(void* cls, MHD_Connection* mhd, const char* url, const char* method, const char* version,
                              const char* upload_data, std::size_t* upload_data_size, void** request_context) {
    auto& self = *static_cast<Listener*>(cls);
    if (*request_context == nullptr || *request_context == &request_started_marker) {
      auto* exchange = new Exchange();
      *request_context = exchange;
      exchange->connection = mhd;
      httplib::Request& req = exchange->request;
      req.method = method;
      req.path = url;
      req.version = version;
      MHD_get_connection_values(
          mhd, MHD_HEADER_KIND,
          [](void* headers, MHD_ValueKind, const char* key, const char* value) {
            static_cast<httplib::Headers*>(headers)->emplace(key, value != nullptr ? value : "");
            return MHD_YES;
          },
          &req.headers);
      MHD_get_connection_values(
          mhd, MHD_GET_ARGUMENT_KIND,
          [](void* params, MHD_ValueKind, const char* key, const char* value) {
            static_cast<httplib::Params*>(params)->emplace(key, value != nullptr ? value : "");
            return MHD_YES;
          },
          &req.params);
      SetPhase(self, mhd, Connection::Phase::kBody);
      {
        std::lock_guard lock(self.work_mutex_);
        if (self.stopping_) return Refuse(self, *exchange, 503, self.options_.name + " server stopping");
      }
      if (std::optional<MHD_Result> refused = CheckHeaders(self, *exchange)) return *refused;
      if (req.has_header("Content-Length")) {
        const std::string declared = req.get_header_value("Content-Length");
        char* end = nullptr;
        const unsigned long long length = std::strtoull(declared.c_str(), &end, 10);
        if (length > self.options_.max_body_bytes) {
          exchange->too_large = true;
          if (length / kDrainFactor > self.options_.max_body_bytes) return RefuseTooLarge(self, *exchange);
        } else {
          exchange->declared_length = static_cast<std::size_t>(length);
        }
      }
      return MHD_YES;  // libmicrohttpd now reads the body (after a 100 Continue if asked)
    }

    auto& exchange = *static_cast<Exchange*>(*request_context);
    if (*upload_data_size > 0) {
      if (!exchange.too_large && *upload_data_size <= self.options_.max_body_bytes - exchange.request.body.size()) {
        // Allocated once, at the first bytes (a connection that declares a body and sends none
        // costs nothing), with room for a parser's padding: no regrowth, no copy later.
        if (exchange.request.body.empty() && exchange.declared_length > 0) {
          exchange.request.body.reserve(exchange.declared_length + kBodyPadding);
        }
        exchange.request.body.append(upload_data, *upload_data_size);
      } else if (!exchange.too_large) {
        exchange.too_large = true;
        std::string().swap(exchange.request.body);
      }
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (exchange.too_large) return RefuseTooLarge(self, exchange);
    if (!exchange.dispatched) {
      exchange.dispatched = true;
      {
        std::lock_guard lock(self.work_mutex_);
        ++self.in_flight_;
        ++self.handlers_pending_;
      }
      SetPhase(self, mhd, Connection::Phase::kBusy);
      MHD_suspend_connection(mhd);
      self.Enqueue([&self, &exchange] {
        self.Serve(exchange);
        exchange.answered = true;
        MHD_resume_connection(exchange.connection);
        std::lock_guard lock(self.work_mutex_);
        --self.handlers_pending_;
        self.work_changed_.notify_all();
      });
      return MHD_YES;
    }
    if (!exchange.answered) return MHD_YES;
    return Respond(self, exchange);
  }

  static MHD_Result RefuseTooLarge(Listener& self, Exchange& exchange) {
    const std::string message = "request body larger than " + std::to_string(self.options_.max_body_bytes) + " bytes";
    self.CountRefusal("body_too_large", exchange.request.method + " " + LoggablePath(exchange.request.path) +
                                            " answered 413: " + message);
    return Refuse(self, exchange, 413, message);
  }
};

Listener::Listener(Options options) : options_(std::move(options)), metrics_(options_.metrics) {}

void Listener::CountRefusal(const std::string& reason, const std::string& detail) const {
  metrics_.refused.Increment({options_.name, reason});
  std::size_t suppressed = 0;
  {
    std::lock_guard lock(log_mutex_);
    RefusalLog& log = refusal_log_[reason];
    const auto now = Clock::now();
    if (log.last != Clock::time_point{} && now - log.last < std::chrono::seconds(1)) {
      ++log.suppressed;
      return;
    }
    log.last = now;
    suppressed = std::exchange(log.suppressed, 0);
  }
  if (suppressed == 0) {
    spdlog::info("{} server: refused ({}): {}", options_.name, reason, detail);
  } else {
    spdlog::info("{} server: refused ({}): {} ({} more not logged in the last second)", options_.name, reason, detail,
                 suppressed);
  }
}

Listener::~Listener() {
  Stop();
}

void Listener::Get(const std::string& pattern, httplib::Server::Handler handler) {
  routes_.push_back({std::regex(pattern), "GET", std::move(handler), nullptr});
}

void Listener::Post(const std::string& pattern, httplib::Server::HandlerWithContentReader handler) {
  routes_.push_back({std::regex(pattern), "POST", nullptr, std::move(handler)});
}

void Listener::SetResponseObserver(ResponseObserver observer) {
  observer_ = std::move(observer);
}

void Listener::SetErrorReply(ErrorReply reply) {
  error_reply_ = std::move(reply);
}

void Listener::UseTls(std::string certificate_pem, std::string private_key_pem) {
  tls_certificate_pem_ = std::move(certificate_pem);
  tls_private_key_pem_ = std::move(private_key_pem);
}

void Listener::ReplyServerError(const httplib::Request& req, httplib::Response& res, int status,
                                const std::string& message) const {
  if (error_reply_) {
    error_reply_(req, res, status, message);
  } else {
    ReplyError(res, status, message);
  }
}

std::size_t Listener::open_connections() const {
  std::lock_guard lock(connections_mutex_);
  return connections_.size();
}

std::string Listener::AllowedMethods(const std::string& path) const {
  std::vector<std::string> methods;
  auto add = [&methods](const std::string& method) {
    for (const auto& m : methods) {
      if (m == method) return;
    }
    methods.push_back(method);
  };
  for (const auto& route : routes_) {
    if (!std::regex_match(path, route.pattern)) continue;
    add(route.method);
    if (route.method == "GET") add("HEAD");  // HEAD is answered from the GET handler
  }
  std::string joined;
  for (const auto& m : methods) joined += (joined.empty() ? "" : ", ") + m;
  return joined;
}

void Listener::Observe(const httplib::Request& req, const httplib::Response& res) const {
  if (observer_) observer_(req, res);
}

void Listener::Serve(Exchange& exchange) {
  httplib::Request& req = exchange.request;
  httplib::Response& res = exchange.response;
  const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
  const Route* route = nullptr;
  for (const auto& candidate : routes_) {
    if (candidate.method == method && std::regex_match(req.path, req.matches, candidate.pattern)) {
      route = &candidate;
      break;
    }
  }
  if (route == nullptr) {
    req.matches = {};
    const std::string allowed = AllowedMethods(req.path);
    if (allowed.empty()) {
      ReplyServerError(req, res, 404, "no such path: " + req.path);
    } else {
      res.set_header("Allow", allowed);
      ReplyServerError(req, res, 405,
                       "method " + req.method + " not allowed on " + req.path + " (allowed: " + allowed + ")");
    }
  } else {
    try {
      if (route->get) {
        route->get(req, res);
      } else {
        // The body has arrived in full: the reader hands it over in one piece.
        httplib::ContentReader reader(
            [&req](httplib::ContentReceiver receiver) {
              return req.body.empty() || receiver(req.body.data(), req.body.size());
            },
            [](httplib::MultipartContentHeader, httplib::ContentReceiver) { return true; });
        route->post(req, res, reader);
      }
      if (res.status == -1) res.status = 200;
    } catch (const std::exception& e) {
      spdlog::error("{} server: {} {} failed: {}", options_.name, req.method, req.path, e.what());
      res = httplib::Response();
      ReplyServerError(req, res, 500, "internal error");
    } catch (...) {
      spdlog::error("{} server: {} {} failed: unknown exception", options_.name, req.method, req.path);
      res = httplib::Response();
      ReplyServerError(req, res, 500, "internal error");
    }
  }
  Observe(req, res);
}

void Listener::Enqueue(std::function<void()> task) {
  {
    std::lock_guard lock(work_mutex_);
    work_.push_back(std::move(task));
  }
  work_changed_.notify_all();
}

void Listener::RunWorker() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(work_mutex_);
      work_changed_.wait(lock, [this] { return workers_exit_ || !work_.empty(); });
      if (work_.empty()) return;
      task = std::move(work_.front());
      work_.pop_front();
    }
    task();
  }
}

void Listener::RunReaper() {
  const auto shortest = std::min({options_.idle_timeout, options_.header_timeout, options_.body_timeout});
  const auto period = std::clamp(shortest / 4, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
  std::unique_lock lock(connections_mutex_);
  while (!reaper_exit_) {
    reaper_wake_.wait_for(lock, period);
    const auto now = Clock::now();
    for (Connection* connection : connections_) {
      if (connection->reaped || connection->fd < 0) continue;
      std::chrono::milliseconds limit{};
      const char* reason = "";
      switch (connection->phase) {
        case Connection::Phase::kIdle:
          limit = options_.idle_timeout;
          reason = "idle_timeout";
          break;
        case Connection::Phase::kHeader:
          limit = options_.header_timeout;
          reason = "header_timeout";
          break;
        case Connection::Phase::kBody:
          limit = options_.body_timeout;
          reason = "body_timeout";
          break;
        case Connection::Phase::kBusy:
          continue;  // a handler runs or an answer is being written
      }
      if (now - connection->since < limit) continue;
      // libmicrohttpd sees the end of the stream and closes the connection on its own thread.
      connection->reaped = true;
      shutdown(connection->fd, SHUT_RDWR);
      CountRefusal(reason, "closed a connection after " + std::to_string(limit.count()) + " ms");
    }
  }
}

Status Listener::Start(const config::ListenAddress& address) {
  if (started_) return FailedPreconditionError(options_.name + " server already started");
  if (tls() && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
    return FailedPreconditionError(options_.name +
                                   " server: this libmicrohttpd was built without TLS support: serve plain HTTP "
                                   "behind a TLS proxy instead");
  }
  started_ = true;

  int bind_errno = 0;
  Result<int> fd = OpenListeningSocket(address, options_.listen_backlog, &bind_errno);
  if (!fd.ok()) {
    started_ = false;
    return UnavailableError("cannot listen on " + address.ToString() + ": " + BindFailureReason(bind_errno));
  }
  listen_fd_ = *fd;

  const std::size_t files = RaiseOpenFileLimit();
  std::size_t max_connections = options_.max_connections;
  if (files < max_connections + kReservedDescriptors) {
    max_connections = files > kReservedDescriptors + 16 ? files - kReservedDescriptors : 16;
    spdlog::warn("{} server: open file limit {} allows {} connections, not {}", options_.name, files, max_connections,
                 options_.max_connections);
  }
  max_connections_ = max_connections;
  const unsigned int io_threads = static_cast<unsigned int>(std::max<std::size_t>(options_.io_threads, 1));
  const auto seconds = [](std::chrono::milliseconds ms) {
    return static_cast<unsigned int>(std::chrono::ceil<std::chrono::seconds>(ms).count());
  };

  for (std::size_t i = 0; i < std::max<std::size_t>(options_.worker_threads, 1); ++i) {
    workers_.emplace_back([this] { RunWorker(); });
  }
  reaper_ = std::thread([this] { RunReaper(); });

  std::vector<MHD_OptionItem> mhd_options = {
      {MHD_OPTION_EXTERNAL_LOGGER, reinterpret_cast<intptr_t>(&Callbacks::LogFromMhd), this},
      {MHD_OPTION_LISTEN_SOCKET, listen_fd_, nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, static_cast<intptr_t>(max_connections + kAcceptSlack * io_threads), nullptr},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<intptr_t>(options_.max_connections_per_ip), nullptr},
      // The request line and headers must fit in this (431 otherwise), whatever their number.
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(kConnectionMemoryBytes), nullptr},
      // A backstop behind the reaper's deadlines: inactivity longer than the longest of them.
      {MHD_OPTION_CONNECTION_TIMEOUT,
       static_cast<intptr_t>(
           seconds(std::max({options_.idle_timeout, options_.header_timeout, options_.body_timeout})) + 1),
       nullptr},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&Callbacks::OnConnection), this},
      {MHD_OPTION_URI_LOG_CALLBACK, reinterpret_cast<intptr_t>(&Callbacks::OnRequestLine), this},
      {MHD_OPTION_NOTIFY_COMPLETED, reinterpret_cast<intptr_t>(&Callbacks::OnCompleted), this},
  };
  if (io_threads > 1) mhd_options.push_back({MHD_OPTION_THREAD_POOL_SIZE, io_threads, nullptr});
  unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (tls()) {
    flags |= MHD_USE_TLS;
    // The strings stay alive in this object for as long as the daemon runs.
    mhd_options.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(tls_certificate_pem_.c_str())});
    mhd_options.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(tls_private_key_pem_.c_str())});
    // GnuTLS's defaults, without the protocol versions before TLS 1.2.
    mhd_options.push_back(
        {MHD_OPTION_HTTPS_PRIORITIES, 0, const_cast<char*>("NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2")});
  }
  mhd_options.push_back({MHD_OPTION_END, 0, nullptr});

  daemon_ = MHD_start_daemon(flags, 0, &Callbacks::OnAccept, this, &Callbacks::OnRequest, this, MHD_OPTION_ARRAY,
                             mhd_options.data(), MHD_OPTION_END);
  if (daemon_ == nullptr) {
    close(listen_fd_);
    listen_fd_ = -1;
    {
      std::lock_guard lock(work_mutex_);
      workers_exit_ = true;
    }
    work_changed_.notify_all();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
    {
      std::lock_guard lock(connections_mutex_);
      reaper_exit_ = true;
    }
    reaper_wake_.notify_all();
    reaper_.join();
    std::string reason;
    {
      std::lock_guard lock(log_mutex_);
      reason = last_log_;
    }
    if (tls()) {
      return InvalidArgumentError("cannot start the " + options_.name + " server on " + address.ToString() +
                                  " with TLS (check the certificate and key files): " +
                                  (reason.empty() ? std::string("libmicrohttpd refused them") : reason));
    }
    return UnavailableError("cannot start the " + options_.name + " server on " + address.ToString() +
                            (reason.empty() ? std::string() : ": " + reason));
  }
  port_ = BoundPort(listen_fd_);
  config::ListenAddress bound_address = address;
  bound_address.port = static_cast<std::uint16_t>(port_);
  spdlog::info("{} server listening on {} ({}, {} I/O threads, {} workers, at most {} connections)", options_.name,
               bound_address.ToString(), tls() ? "HTTPS" : "HTTP", io_threads, workers_.size(), max_connections);
  return Status::Ok();
}

void Listener::Stop() {
  if (daemon_ == nullptr) return;
  // No new connections: the listening socket is closed (a connect is refused).
  // It is shut down now and closed only after MHD_stop_daemon: an I/O thread may still be
  // looking at it (ThreadSanitizer saw close() race with the event loop).
  const MHD_socket listening = MHD_quiesce_daemon(daemon_);
  if (listening != MHD_INVALID_SOCKET) shutdown(listening, SHUT_RDWR);
  listen_fd_ = -1;
  {
    // Handlers finish however long they take; their answers get a few seconds to go out.
    std::unique_lock lock(work_mutex_);
    stopping_ = true;
    work_changed_.wait(lock, [this] { return handlers_pending_ == 0; });
    work_changed_.wait_for(lock, kStopFlushTimeout, [this] { return in_flight_ == 0; });
  }
  MHD_stop_daemon(daemon_);
  if (listening != MHD_INVALID_SOCKET) close(listening);
  daemon_ = nullptr;
  {
    std::lock_guard lock(work_mutex_);
    workers_exit_ = true;
  }
  work_changed_.notify_all();
  for (auto& worker : workers_) worker.join();
  workers_.clear();
  {
    std::lock_guard lock(connections_mutex_);
    reaper_exit_ = true;
  }
  reaper_wake_.notify_all();
  reaper_.join();
  spdlog::info("{} server stopped", options_.name);
}

}  // namespace pwrcell::runtime::http
