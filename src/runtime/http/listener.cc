#include "runtime/http/listener.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <system_error>
#include <utility>

namespace pwrcell::runtime::http {
namespace {

// Seconds an idle keep-alive connection is kept open. It also bounds how long Stop() waits for
// such a connection (httplib re-checks the listening socket only between requests).
constexpr time_t kKeepAliveTimeoutSeconds = 2;

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

}  // namespace

void ReplyJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void ReplyError(httplib::Response& res, int status, const std::string& message) {
  ReplyJson(res, status, nlohmann::json{{"error", message}});
}

Listener::Listener(Options options) : options_(std::move(options)) {}

Listener::~Listener() {
  Stop();
}

void Listener::Get(const std::string& pattern, httplib::Server::Handler handler) {
  server_.Get(pattern, std::move(handler));
  routes_.push_back({std::regex(pattern), "GET"});
}

void Listener::Post(const std::string& pattern, httplib::Server::HandlerWithContentReader handler) {
  server_.Post(pattern, std::move(handler));
  routes_.push_back({std::regex(pattern), "POST"});
}

void Listener::SetResponseObserver(ResponseObserver observer) {
  observer_ = std::move(observer);
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
    if (route.method == "GET") add("HEAD");  // httplib answers HEAD from the GET handler
  }
  std::string joined;
  for (const auto& m : methods) joined += (joined.empty() ? "" : ", ") + m;
  return joined;
}

httplib::Server::HandlerResponse Listener::OnError(const httplib::Request& req, httplib::Response& res) const {
  // A handler that answered an error has already written its JSON body; keep it.
  if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
  switch (res.status) {
    case 404: {
      const std::string allowed = AllowedMethods(req.path);
      if (allowed.empty()) {
        ReplyError(res, 404, "no such path: " + req.path);
      } else {
        res.set_header("Allow", allowed);
        ReplyError(res, 405, "method " + req.method + " not allowed on " + req.path + " (allowed: " + allowed + ")");
      }
      break;
    }
    case 413:
      ReplyError(res, 413, "request body larger than " + std::to_string(options_.max_body_bytes) + " bytes");
      break;
    case 400:
      ReplyError(res, 400, "malformed HTTP request");
      break;
    default:
      ReplyError(res, res.status, "HTTP error " + std::to_string(res.status));
      break;
  }
  return httplib::Server::HandlerResponse::Handled;
}

Status Listener::Start(const config::ListenAddress& address) {
  if (started_) return FailedPreconditionError(options_.name + " server already started");
  started_ = true;

  const std::size_t threads = options_.worker_threads;
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default socket options set SO_REUSEPORT, which lets a second process bind the same
  // port without an error and silently take half of the connections. SO_REUSEADDR alone still
  // allows a quick restart (TIME_WAIT) but makes a port in use fail loudly.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server_.set_payload_max_length(options_.max_body_bytes);
  server_.set_keep_alive_timeout(kKeepAliveTimeoutSeconds);
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) { return OnError(req, res); }));
  server_.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("{} server: {} {} failed: {}", options_.name, req.method, req.path, what);
    ReplyError(res, 500, "internal error");
  });
  if (observer_) {
    server_.set_post_routing_handler(
        [this](const httplib::Request& req, httplib::Response& res) { observer_(req, res); });
  }

  // httplib reports a failed bind as false / -1 only; the reason is still in errno, which nothing
  // after the failing bind() (close, freeaddrinfo) changes.
  errno = 0;
  int bound = -1;
  if (address.port == 0) {
    bound = server_.bind_to_any_port(address.host);
  } else if (server_.bind_to_port(address.host, address.port)) {
    bound = address.port;
  }
  const int bind_errno = errno;
  if (bound <= 0) {
    started_ = false;
    return UnavailableError("cannot listen on " + address.ToString() + ": " + BindFailureReason(bind_errno));
  }
  port_.store(bound);

  thread_ = std::thread([this] {
    if (!server_.listen_after_bind()) spdlog::error("{} server: the accept loop stopped on an error", options_.name);
    loop_finished_.store(true);
  });
  // httplib's stop() does nothing until the loop has marked itself running, so wait for that here
  // rather than let a quick Stop() leave the thread accepting forever.
  while (!server_.is_running() && !loop_finished_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  config::ListenAddress bound_address = address;
  bound_address.port = static_cast<std::uint16_t>(bound);
  spdlog::info("{} server listening on {}", options_.name, bound_address.ToString());
  return Status::Ok();
}

void Listener::Stop() {
  if (!thread_.joinable()) return;
  server_.stop();
  thread_.join();
  spdlog::info("{} server stopped", options_.name);
}

}  // namespace pwrcell::runtime::http
