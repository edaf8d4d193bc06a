#include "runtime/http/admin_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/concerto_types.h"
#include "domain/device_json.h"
#include "runtime/http/access_key.h"
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

AdminMetrics::AdminMetrics(Metrics* registry)
    : requests(registry, "pwrcell_admin_requests_total",
               "Requests to the admin API, by HTTP response status (also those refused by a limit).", {"status"}),
      refused(registry, "pwrcell_admin_refused_total",
              "Admin API requests refused 401 for their bearer token (admin.access_key_secret); reason = "
              "missing_key or wrong_key.",
              {"reason"}) {}

AdminServer::AdminServer(config::AdminConfig config, ports::DeviceStore& devices, Metrics& metrics, AdminHooks hooks,
                         ports::SecretStore* secrets)
    : config_(std::move(config)),
      devices_(devices),
      metrics_(metrics),
      hooks_(std::move(hooks)),
      secrets_(secrets),
      admin_metrics_(&metrics),
      listener_(std::make_unique<Listener>(Listener::Options{
          .name = "admin",
          .worker_threads = kAdminWorkerThreads,
          .io_threads = 1,
          .max_body_bytes = kAdminMaxBodyBytes,
          // Loopback only: every client has the same address, so a per-address cap would be
          // the global one. Slow clients cost a descriptor each, and the header deadline
          // frees them.
          .max_connections = 1024,
          // As deep as the cap: a burst of connections (a flood of idle ones) waits in the kernel
          // while the event loop closes the idle-longest ones for room, instead of having its
          // SYNs dropped and retried a second later.
          .listen_backlog = 1024,
          .idle_timeout = std::chrono::seconds(60),
          .header_timeout = std::chrono::seconds(10),
          .body_timeout = std::chrono::seconds(10),
          .metrics = &metrics,
      })) {
  listener_->SetResponseObserver([this](const httplib::Request&, const httplib::Response& res) {
    admin_metrics_.requests.Increment({std::to_string(res.status)});
  });
  listener_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    ReplyJson(res, 200, json{{"status", "ok"}});
  });

  // Every route but /healthz checks the bearer token first (when one is configured).
  const auto guarded = [this](httplib::Server::Handler handler) -> httplib::Server::Handler {
    return [this, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
      if (access_key_) {
        const AccessKey::Verdict verdict = access_key_->Check(BearerToken(req));
        if (verdict != AccessKey::Verdict::kAccepted) {
          admin_metrics_.refused.Increment({verdict == AccessKey::Verdict::kMissing ? "missing_key" : "wrong_key"});
          res.set_header("WWW-Authenticate", "Bearer realm=\"pwrcell-admin\"");
          ReplyError(res, 401,
                     verdict == AccessKey::Verdict::kMissing ? "a bearer token is required: Authorization: Bearer"
                                                             : "invalid bearer token");
          return;
        }
      }
      handler(req, res);
    };
  };

  listener_->Get(
      "/readyz", guarded([this](const httplib::Request&, httplib::Response& res) {
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
      }));

  listener_->Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
                   if (hooks_.refresh_gauges) hooks_.refresh_gauges();
                   res.set_content(metrics_.RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
                 }));

  listener_->Get("/api/devices", guarded([this](const httplib::Request& req, httplib::Response& res) {
                   // One page and a count (runtime/http/device_api.h), never the whole table.
                   std::map<std::string, std::string> params;
                   for (const auto& [name, value] : req.params) params.emplace(name, value);
                   const ApiReply reply = ListDevices(devices_, params);
                   res.status = reply.status;
                   res.set_content(reply.body, "application/json");
                 }));

  listener_->Get("/api/devices/(.+)", guarded([this](const httplib::Request& req, httplib::Response& res) {
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
                 }));

  listener_->Get("/", guarded([](const httplib::Request&, httplib::Response& res) {
                   res.set_header("Cache-Control", "no-store");
                   res.set_content(std::string(DashboardHtml()), "text/html; charset=utf-8");
                 }));
}

AdminServer::~AdminServer() {
  Stop();
}

Status AdminServer::Start() {
  if (listener_->port() != 0) return FailedPreconditionError("admin server already started");
  if (!config_.access_key_secret.empty() && !access_key_) {
    if (secrets_ == nullptr) {
      return FailedPreconditionError("admin.access_key_secret is set but the admin server has no secret store");
    }
    auto access_key = std::make_unique<AccessKey>(*secrets_, config_.access_key_secret);
    PWRCELL_RETURN_IF_ERROR(access_key->Load().WithContext("admin.access_key_secret"));
    access_key_ = std::move(access_key);
  }
  PWRCELL_RETURN_IF_ERROR(listener_->Start(config_.listen));
  if (access_key_) {
    spdlog::info("admin: every request but /healthz needs the bearer token of secret {}", access_key_->secret_id());
  }
  return Status::Ok();
}

void AdminServer::Stop() {
  listener_->Stop();
}

int AdminServer::port() const {
  return listener_->port();
}

}  // namespace pwrcell::runtime::http
