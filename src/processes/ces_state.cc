#include "processes/ces_state.h"

#include <spdlog/spdlog.h>

#include <map>

#include "domain/remote_state.h"
#include "processes/device_updates.h"
#include "processes/messages.h"

namespace pwrcell::processes {

Status CesStatePoller::Poll() {
  auto devices = context_.devices.List();
  if (!devices.ok()) return devices.status();
  std::vector<std::string> bodies;
  StatusRequest batch;
  const auto size = static_cast<std::size_t>(std::max(1, context_.settings.status_batch_size));
  for (const auto& d : *devices) {
    if (d.is_simulated) continue;  // no CES call for simulated systems
    batch.remote_ids.push_back(d.remote_id);
    if (batch.remote_ids.size() == size) {
      bodies.push_back(EncodeCesRequest(batch));
      batch.remote_ids.clear();
    }
  }
  if (!batch.remote_ids.empty()) bodies.push_back(EncodeCesRequest(batch));
  for (std::size_t begin = 0; begin < bodies.size(); begin += ports::kMaxQueueBatch) {
    std::vector<std::string> chunk(bodies.begin() + static_cast<std::ptrdiff_t>(begin),
                                   bodies.begin() + static_cast<std::ptrdiff_t>(std::min(bodies.size(), begin + ports::kMaxQueueBatch)));
    auto sent = context_.ces_queue.SendBatch(chunk);
    if (!sent.ok()) return sent.status().WithContext("queueing get_status");
  }
  return Status::Ok();
}

CesStateProcessor::CesStateProcessor(Context& context) : context_(context) {
  context_.metrics.Describe("pwrcell_remote_state_changes_total", Metrics::Type::kCounter,
                            "remote_state changes decided, by new state");
  context_.metrics.Describe("pwrcell_ces_statuses_total", Metrics::Type::kCounter,
                            "CES system statuses received, by statusName");
}

Status CesStateProcessor::Process(const domain::CesStatusBatch& batch) {
  const Timestamp now = context_.clock.Now();
  std::set<std::string> touched;
  auto store = [&](const std::string& id, const std::string& status) -> Status {
    context_.metrics.Increment("pwrcell_ces_statuses_total", {{"status", status}});
    auto updated = MutateDevice(
        context_.devices, id,
        [&](domain::DeviceRecord& d) {
          if (d.is_simulated) return false;
          d.system_status = status;
          d.system_status_at = now;
          return true;
        },
        context_.clock);
    if (!updated.ok()) return updated.status();
    if (updated->has_value()) touched.insert(id);
    return Status::Ok();
  };
  for (const auto& s : batch.statuses) PWRCELL_RETURN_IF_ERROR(store(s.system_id, s.status_name));
  for (const auto& id : batch.not_found) {
    spdlog::warn("ces_state: CES does not know system {}", id);
    PWRCELL_RETURN_IF_ERROR(store(id, "UNKNOWN"));
  }
  return EvaluateAndPublish(touched);
}

Status CesStateProcessor::Sweep() { return EvaluateAndPublish(std::nullopt); }

Status CesStateProcessor::EvaluateAndPublish(const std::optional<std::set<std::string>>& only) {
  if (!context_.shared.source_caught_up()) {
    if (!context_.source_progress ||
        domain::SourceCaughtUp(context_.source_progress(), context_.settings.record_interval)) {
      context_.shared.MarkSourceCaughtUp();
      spdlog::info("liveness: the telemetry source has caught up; the startup grace is over");
    }
  }
  domain::LivenessContext liveness{context_.clock.Now(), context_.settings.offline_timeout,
                                   context_.shared.started_at(), context_.shared.source_caught_up()};

  auto devices = context_.devices.List();
  if (!devices.ok()) return devices.status();
  std::vector<std::string> changed;
  Status first_error;
  for (auto& d : *devices) {
    if (only && !only->count(d.remote_id)) continue;
    if (!domain::RemoteStateChange(d, liveness)) continue;
    std::optional<domain::RemoteState> previous;
    auto updated = MutateDevice(
        context_.devices, d.remote_id,
        [&](domain::DeviceRecord& fresh) {
          auto change = domain::RemoteStateChange(fresh, liveness);
          if (!change) return false;
          previous = fresh.remote_state;
          fresh.remote_state = change->state;
          fresh.remote_state_reason = change->reason;
          return true;
        },
        context_.clock);
    if (!updated.ok()) {
      if (first_error.ok()) first_error = updated.status();
      continue;
    }
    if (!updated->has_value() || (*updated)->remote_state == d.remote_state) continue;
    d = **updated;
    changed.push_back(d.remote_id);
    context_.metrics.Increment("pwrcell_remote_state_changes_total",
                               {{"state", std::string(domain::RemoteStateName(*d.remote_state))}});
    spdlog::info("remote_state: system {}: {} -> {} ({})", d.remote_id,
                 previous ? domain::RemoteStateName(*previous) : "none", domain::RemoteStateName(*d.remote_state),
                 d.remote_state_reason);
  }
  if (changed.empty()) return first_error;

  // Site aggregates over every system of the site, with the states just decided.
  std::map<std::string, std::vector<domain::RemoteState>> sites;
  std::map<std::string, const domain::DeviceRecord*> by_id;
  for (const auto& d : *devices) {
    by_id[d.remote_id] = &d;
    if (d.site) sites[d.site->site_id].push_back(d.remote_state.value_or(domain::RemoteState::kOffline));
  }
  std::vector<std::string> bodies;
  for (const auto& id : changed) {
    const domain::DeviceRecord& d = *by_id[id];
    RemoteStateRequest request{id, std::nullopt};
    if (d.site) {
      auto aggregate = domain::AggregateSiteState(sites[d.site->site_id]);
      request.site = SiteStateUpdate{d.site->site_id, aggregate.state, aggregate.reason};
    }
    bodies.push_back(EncodeConcertoRequest(request));
  }
  for (std::size_t begin = 0; begin < bodies.size(); begin += ports::kMaxQueueBatch) {
    const std::size_t end = std::min(bodies.size(), begin + ports::kMaxQueueBatch);
    std::vector<std::string> chunk(bodies.begin() + static_cast<std::ptrdiff_t>(begin),
                                   bodies.begin() + static_cast<std::ptrdiff_t>(end));
    auto sent = context_.concerto_queue.SendBatch(chunk);
    if (sent.ok()) continue;
    // Not queued: forget the decision, so that the next evaluation makes (and sends) it again.
    spdlog::error("remote_state: queueing {} updates failed: {}", chunk.size(), sent.status().ToString());
    for (std::size_t k = begin; k < end; ++k) {
      const domain::DeviceRecord& d = *by_id[changed[k]];
      auto reverted = MutateDevice(
          context_.devices, d.remote_id,
          [&](domain::DeviceRecord& fresh) {
            if (fresh.remote_state != d.remote_state) return false;
            fresh.remote_state.reset();
            return true;
          },
          context_.clock);
      (void)reverted;
    }
    if (first_error.ok()) first_error = sent.status();
  }
  return first_error;
}

}  // namespace pwrcell::processes
