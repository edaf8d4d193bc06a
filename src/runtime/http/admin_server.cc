#include "runtime/http/admin_server.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/concerto_types.h"
#include "domain/device_json.h"
#include "runtime/http/dashboard.h"
#include "runtime/http/device_api.h"
#include "runtime/http/listener.h"

namespace pwrcell::runtime::http {
namespace {

using nlohmann::json;

// The admin server serves one operator and a Prometheus scraper; a few threads are plenty.
constexpr std::size_t kAdminWorkerThreads = 4;
// Admin requests carry no body worth the name.
constexpr std::size_t kAdminMaxBodyBytes = 64 * 1024;

json DeviceJson(const domain::DeviceRecord& record) {
  json j = domain::ToJson(record);
  j["kind"] = record.is_simulated ? "simulated" : "real";
  return j;
}

}  // namespace

AdminServer::AdminServer(config::AdminConfig config, ports::DeviceStore& devices, Metrics& metrics, AdminHooks hooks)
    : config_(std::move(config)),
      devices_(devices),
      metrics_(metrics),
      hooks_(std::move(hooks)),
      listener_(std::make_unique<Listener>(Listener::Options{
          .name = "admin",
          .worker_threads = kAdminWorkerThreads,
          .io_threads = 1,
          .max_body_bytes = kAdminMaxBodyBytes,
          // Loopback only: every client has the same address, so a per-address cap would be
          // the global one. Slow clients cost a descriptor each, and the header deadline
          // frees them.
          .max_connections = 1024,
          .listen_backlog = 256,
          .idle_timeout = std::chrono::seconds(60),
          .header_timeout = std::chrono::seconds(10),
          .body_timeout = std::chrono::seconds(10),
      })) {
  listener_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    ReplyJson(res, 200, json{{"status", "ok"}});
  });

  listener_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    const auto [ready, reason] = hooks_.readiness ? hooks_.readiness() : std::pair<bool, std::string>{true, ""};
    if (ready) {
      ReplyJson(res, 200, json{{"status", "ready"}});
    } else {
      json body{{"status", "not ready"}, {"reason", reason}};
      if (hooks_.store_trouble) {
        if (std::string trouble = hooks_.store_trouble(); !trouble.empty()) body["store"] = std::move(trouble);
      }
      ReplyJson(res, 503, body);
    }
  });

  listener_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    if (hooks_.refresh_gauges) hooks_.refresh_gauges();
    res.set_content(metrics_.RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
  });

  listener_->Get("/api/devices", [this](const httplib::Request& req, httplib::Response& res) {
    // One page and a count (runtime/http/device_api.h), never the whole table.
    std::map<std::string, std::string> params;
    for (const auto& [name, value] : req.params) params.emplace(name, value);
    const ApiReply reply = ListDevices(devices_, params);
    res.status = reply.status;
    res.set_content(reply.body, "application/json");
  });

  listener_->Get("/api/devices/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string remote_id = req.matches[1];
    Result<std::optional<domain::DeviceRecord>> record = devices_.Get(remote_id);
    if (!record.ok()) {
      spdlog::warn("admin: reading device {} failed: {}", remote_id, record.status().ToString());
      ReplyError(res, 503, record.status().ToString());
      return;
    }
    if (!record->has_value()) {
      ReplyError(res, 404, "no device with remote_id " + remote_id);
      return;
    }
    ReplyJson(res, 200, DeviceJson(**record));
  });

  listener_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(std::string(DashboardHtml()), "text/html; charset=utf-8");
  });
}

AdminServer::~AdminServer() {
  Stop();
}

Status AdminServer::Start() {
  return listener_->Start(config_.listen);
}

void AdminServer::Stop() {
  listener_->Stop();
}

int AdminServer::port() const {
  return listener_->port();
}

}  // namespace pwrcell::runtime::http
