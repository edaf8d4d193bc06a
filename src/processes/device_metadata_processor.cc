#include "processes/device_metadata_processor.h"

#include <spdlog/spdlog.h>

#include "domain/commissioning_plan.h"
#include "domain/coupling.h"
#include "processes/device_updates.h"
#include "processes/messages.h"
#include "processes/shared_state.h"

namespace pwrcell::processes {

namespace {
constexpr const char* kAwaiting = "awaiting commissioning (auto-commissioning is off)";
}

Status RequestCommissioningIfNeeded(Context& context, const std::string& remote_id) {
  const bool automatic = context.settings.auto_commissioning;
  const std::string throttle = SystemKey(remote_id, "commission");
  // Decided on the record as read, then once more inside the write (a concurrent writer); the
  // throttle (in the store, shared by every process) is taken outside the write, once.
  auto current = context.devices.Get(remote_id);
  if (!current.ok()) return current.status();
  if (!current->has_value() || !(*current)->metadata) return Status::Ok();
  bool request = false;
  if (automatic && domain::NeedsCommissioning(**current)) {
    auto due = context.coordination.TryThrottle(throttle, context.clock.Now(), context.settings.request_repeat_after);
    if (!due.ok()) return due.status();
    request = *due;
  }
  auto updated = MutateDevice(
      context.devices, remote_id,
      [&](domain::DeviceRecord& d) {
        if (!d.metadata) return false;
        const bool needed = domain::NeedsCommissioning(d);
        domain::Commissioning wanted = d.commissioning;
        if (!needed) {
          // Complete in Concerto (by us or by an operator).
          if (d.commissioning.state == domain::CommissioningState::kDone) return false;
          wanted = {domain::CommissioningState::kDone, ""};
        } else if (!automatic) {
          wanted = {domain::CommissioningState::kNotRequested, kAwaiting};
        } else if (request && d.commissioning.state != domain::CommissioningState::kPending) {
          wanted = {domain::CommissioningState::kPending, "queued"};
        }
        if (wanted == d.commissioning) return false;
        d.commissioning = wanted;
        return true;
      },
      context.clock);
  if (!updated.ok()) {
    if (request) (void)context.coordination.ClearThrottle(throttle);
    return updated.status();
  }
  if (!updated->has_value() || !domain::NeedsCommissioning(**updated)) {
    if (request) (void)context.coordination.ClearThrottle(throttle);
    return Status::Ok();
  }
  if (!request) return Status::Ok();
  auto sent = context.concerto_queue.Send(EncodeConcertoRequest(CommissionRequest{remote_id}));
  if (!sent.ok()) {
    (void)context.coordination.ClearThrottle(throttle);
    return sent.status().WithContext("queueing commissioning of " + remote_id);
  }
  spdlog::info("commissioning: queued system {}", remote_id);
  return Status::Ok();
}

DeviceMetadataProcessor::DeviceMetadataProcessor(Context& context) : context_(context), metrics_(&context.metrics) {}

Status DeviceMetadataProcessor::Process(const std::string& remote_id, const domain::SystemMetadata& metadata) {
  const domain::CouplingDecision coupling = domain::DetermineCoupling(remote_id, metadata.inverters);
  if (coupling.error) {
    spdlog::error("metadata: {}", *coupling.error);
    metrics_.coupling_errors.Increment();
  }
  const Timestamp now = context_.clock.Now();
  auto updated = MutateDevice(
      context_.devices, remote_id,
      [&](domain::DeviceRecord& d) {
        // Every inverter's RCP number, in CES order: the records of each of them match the system.
        std::vector<std::string> rcpns;
        for (const auto& inverter : metadata.inverters) rcpns.push_back(inverter.rcpn);
        d.SetInverterRcpns(std::move(rcpns));
        d.coupling = coupling.coupling;
        d.metadata = metadata;
        d.metadata_fetched_at = now;
        if (!d.is_simulated && !metadata.status_name.empty()) {
          d.system_status = metadata.status_name;
          d.system_status_at = now;
        }
        return true;
      },
      context_.clock);
  if (!updated.ok()) return updated.status();
  if (!updated->has_value()) {
    spdlog::debug("metadata: system {} is no longer registered; answer ignored", remote_id);
    return Status::Ok();
  }
  metrics_.processed.Increment({domain::CouplingName(coupling.coupling)});
  std::string inverters;
  for (const auto& rcpn : (*updated)->inverter_rcpns) inverters += (inverters.empty() ? "" : ", ") + rcpn;
  spdlog::info("metadata: system {}: inverter{} {}, {}-coupled, {} batteries, {} PV links{}", remote_id,
               (*updated)->inverter_rcpns.size() == 1 ? "" : "s", inverters, domain::CouplingName(coupling.coupling),
               metadata.batteries.size(), metadata.pv_links.size(), metadata.site_meter_id ? ", site meter" : "");
  return RequestCommissioningIfNeeded(context_, remote_id);
}

}  // namespace pwrcell::processes
