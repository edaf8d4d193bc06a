#include "processes/ces_state.h"

#include <spdlog/spdlog.h>

#include <map>

#include "domain/remote_state.h"
#include "processes/device_updates.h"
#include "processes/messages.h"
#include "processes/shared_state.h"

namespace pwrcell::processes {
namespace {

// Records (or keys) per read of a fleet-wide pass: memory stays bounded by a page, not the fleet.
constexpr std::size_t kDevicePage = 500;

}  // namespace

Status CesStatePoller::Poll() {
  // The real systems' ids, a page at a time: no record is decoded.
  std::vector<std::string> bodies;
  StatusRequest batch;
  const auto size = static_cast<std::size_t>(std::max(1, context_.settings.status_batch_size));
  ports::DeviceFilter real;
  real.is_simulated = false;  // no CES call for simulated systems
  std::string after;
  while (true) {
    auto page = context_.devices.ListKeys(real, after, kDevicePage);
    if (!page.ok()) return page.status();
    for (const auto& key : *page) {
      batch.remote_ids.push_back(key.remote_id);
      if (batch.remote_ids.size() == size) {
        bodies.push_back(EncodeCesRequest(batch));
        batch.remote_ids.clear();
      }
    }
    if (page->size() < kDevicePage) break;
    after = page->back().remote_id;
  }
  if (!batch.remote_ids.empty()) bodies.push_back(EncodeCesRequest(batch));
  for (std::size_t begin = 0; begin < bodies.size(); begin += ports::kMaxQueueBatch) {
    std::vector<std::string> chunk(
        bodies.begin() + static_cast<std::ptrdiff_t>(begin),
        bodies.begin() + static_cast<std::ptrdiff_t>(std::min(bodies.size(), begin + ports::kMaxQueueBatch)));
    auto sent = context_.ces_queue.SendBatch(chunk);
    if (!sent.ok()) return sent.status().WithContext("queueing get_status");
  }
  return Status::Ok();
}

CesStateProcessor::CesStateProcessor(Context& context) : context_(context), metrics_(&context.metrics) {}

Status CesStateProcessor::Process(const domain::CesStatusBatch& batch) {
  const Timestamp now = context_.clock.Now();
  std::set<std::string> touched;
  auto store = [&](const std::string& id, const std::string& status) -> Status {
    metrics_.ces_statuses.Increment({status});
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

Status CesStateProcessor::Sweep() {
  return EvaluateAndPublish(std::nullopt);
}

Result<domain::LivenessContext> CesStateProcessor::Liveness() {
  const Timestamp now = context_.clock.Now();
  domain::LivenessContext liveness{now, context_.settings.offline_timeout, now, /*source_caught_up=*/true};
  if (!context_.source_progress) return liveness;  // no telemetry source to wait for: no grace
  auto watermark = ReadStartupWatermark(context_.coordination);
  if (!watermark.ok()) return watermark.status().WithContext("reading the startup-grace watermark");
  if (!watermark->has_value()) return liveness;  // no adapter start recorded: no grace
  liveness.started_at = (*watermark)->started_at;
  liveness.source_caught_up = (*watermark)->caught_up;
  if (!liveness.source_caught_up && domain::InStartupGrace(liveness) &&
      domain::SourceCaughtUp(context_.source_progress(), context_.settings.record_interval)) {
    PWRCELL_RETURN_IF_ERROR(MarkSourceCaughtUp(context_.coordination));
    liveness.source_caught_up = true;
    spdlog::info("liveness: the telemetry source has caught up; the startup grace is over");
  }
  return liveness;
}

Status CesStateProcessor::EvaluateAndPublish(const std::optional<std::set<std::string>>& only) {
  auto liveness = Liveness();
  if (!liveness.ok()) return liveness.status();
  const Timestamp now = liveness->now;

  std::vector<RemoteStateRequest> requests;
  Status first_error;
  auto note = [&](const Status& s) {
    if (!s.ok() && first_error.ok()) first_error = s;
  };
  auto evaluate = [&](std::vector<domain::DeviceRecord>& devices) {
    for (auto& d : devices) {
      domain::RemoteStateStep step = domain::PlanRemoteState(d, *liveness);
      bool state_changed = false;
      if (step.record) {
        std::optional<domain::RemoteState> previous;
        bool wrote = false;  // this call recorded the evaluation (not a concurrent sweep)
        auto updated = MutateDevice(
            context_.devices, d.remote_id,
            [&](domain::DeviceRecord& fresh) {
              wrote = false;
              const domain::RemoteStateStep again = domain::PlanRemoteState(fresh, *liveness);
              if (!again.record) return false;
              wrote = true;
              previous = fresh.evaluated_state;
              fresh.evaluated_state = again.decision.state;
              fresh.remote_state_reason = again.decision.reason;
              fresh.remote_state_cause = again.decision.cause;
              fresh.remote_state_since = now;
              return true;
            },
            context_.clock);
        if (!updated.ok()) {
          note(updated.status());
          continue;
        }
        if (!updated->has_value()) continue;  // deregistered meanwhile
        // Compared with what this write replaced, not with the record listed earlier: a concurrent
        // sweep that recorded the change first has counted and queued it.
        state_changed = wrote && (**updated).evaluated_state != previous;
        d = std::move(**updated);
        step = domain::PlanRemoteState(d, *liveness);
        if (state_changed) {
          metrics_.remote_state_changes.Increment({domain::RemoteStateName(*d.evaluated_state)});
          spdlog::info("remote_state: system {}: {} -> {} ({})", d.remote_id,
                       previous ? domain::RemoteStateName(*previous) : "none",
                       domain::RemoteStateName(*d.evaluated_state), d.remote_state_reason);
        } else if (wrote) {
          spdlog::debug("remote_state: system {}: still {}, now because {}", d.remote_id,
                        domain::RemoteStateName(*d.evaluated_state), d.remote_state_reason);
        }
      }
      if (!step.send) continue;
      // One queued request per system at a time (its lease); a change of state is queued even when
      // one is waiting, since that one may have read the record before the change.
      std::string token = NewOwnerToken();
      auto leased = context_.coordination.TryAcquireLease(SystemKey(d.remote_id, "remote_state"), token, now,
                                                          context_.settings.list_assets_expiry);
      if (!leased.ok()) {
        note(leased.status());
        continue;
      }
      if (!*leased) {
        if (!state_changed) continue;
        token.clear();
      }
      requests.push_back(
          RemoteStateRequest{d.remote_id, d.site ? std::optional<std::string>(d.site->site_id) : std::nullopt, token});
    }
  };

  // The systems of a CES answer are read one by one (a batch of 100 must not decode the whole
  // table). The sweep reads only the systems whose evaluation may have changed
  // (domain::EvaluationSettled: not yet accepted, gone silent, heard again, an error reading or a
  // CES status written since), a page at a time: a healthy fleet at rest costs one indexed query.
  if (only) {
    std::vector<domain::DeviceRecord> devices;
    for (const auto& id : *only) {
      auto got = context_.devices.Get(id);
      if (!got.ok()) return got.status();
      if (got->has_value()) devices.push_back(std::move(**got));
    }
    evaluate(devices);
  } else {
    const Timestamp cutoff = now - liveness->offline_timeout;
    std::string after;
    while (true) {
      auto page = context_.devices.ListUnsettled(cutoff, after, kDevicePage);
      if (!page.ok()) return page.status();
      const bool last = page->size() < kDevicePage;
      if (!page->empty()) after = page->back().remote_id;
      evaluate(*page);
      if (last) break;
    }
  }

  for (std::size_t begin = 0; begin < requests.size(); begin += ports::kMaxQueueBatch) {
    const std::size_t end = std::min(requests.size(), begin + ports::kMaxQueueBatch);
    std::vector<std::string> chunk;
    for (std::size_t k = begin; k < end; ++k) chunk.push_back(EncodeConcertoRequest(requests[k]));
    auto sent = context_.concerto_queue.SendBatch(chunk);
    if (sent.ok()) continue;
    // Not queued: give the leases back, so that the next evaluation queues them again.
    spdlog::error("remote_state: queueing {} updates failed: {}", chunk.size(), sent.status().ToString());
    for (std::size_t k = begin; k < end; ++k) {
      if (requests[k].lease_owner.empty()) continue;
      (void)context_.coordination.ReleaseLease(SystemKey(requests[k].remote_id, "remote_state"),
                                               requests[k].lease_owner);
    }
    note(sent.status());
  }
  return first_error;
}

}  // namespace pwrcell::processes
