#include "processes/simulated_systems.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <set>

#include "processes/shared_state.h"

namespace pwrcell::processes {
namespace {
// Slots missed since a system's last record (a tick that came late because the process was
// busy, a sink that failed) are produced on the next tick, as a real system sends the records
// it buffered; at most this many per tick, the newest ones (a longer gap is spanned by the first).
constexpr std::int64_t kMaxSlotsPerTick = 10;
// Keys per read of the simulated systems' ids.
constexpr std::size_t kKeyPage = 1000;
}  // namespace

fleet::SystemSpec SimulatedSystemSpec(const std::string& remote_id, std::optional<double> rated_power_kw) {
  fleet::CompositionOptions options;
  options.ac_coupled_fraction = 0.0;  // simulated systems are DC-coupled (SPEC section 3)
  return fleet::MakeSystem(remote_id, rated_power_kw, options);
}

domain::SystemMetadata SynthesizeMetadata(const std::string& remote_id, std::optional<double> rated_power_kw) {
  return fleet::ToCesMetadata(SimulatedSystemSpec(remote_id, rated_power_kw));
}

bool SimulatedMetadataStale(const domain::DeviceRecord& record) {
  if (!record.metadata) return true;
  return *record.metadata != SynthesizeMetadata(record.remote_id, record.rated_power_kw);
}

SimulatedTelemetry::SimulatedTelemetry(Context& context, Duration interval, Sink sink)
    : context_(context),
      interval_(interval),
      sink_(std::move(sink)),
      owner_(NewOwnerToken()),
      metrics_(&context.metrics) {}

Result<int> SimulatedTelemetry::Tick() {
  std::lock_guard lock(mutex_);
  const Timestamp now = context_.clock.Now();
  // One producer for the whole adapter (several serve processes may share the store): the one
  // holding the lease, renewed every tick. Another takes over when it stops ticking.
  auto leased = context_.coordination.TryAcquireLease(
      kProducerLease, owner_, now, std::max(Duration(interval_ * 3), Duration(std::chrono::seconds(10))));
  if (!leased.ok()) return leased.status().WithContext("simulated telemetry producer lease");
  if (!*leased) {
    running_.clear();  // a later takeover starts from the store's watermark, not from stale slots
    known_.clear();
    return 0;
  }
  // The newest slot any producer stored: a producer taking over never produces it again.
  auto watermark = context_.coordination.GetValue(kProducedSlotKey);
  if (!watermark.ok()) return watermark.status();
  std::optional<Timestamp> produced_until;
  std::int64_t watermark_version = 0;
  if (watermark->has_value()) {
    watermark_version = (*watermark)->version;
    try {
      produced_until = FromUnixMillis(std::stoll((*watermark)->value));
    } catch (...) {
      produced_until.reset();  // unreadable: ignore it (it is rewritten below)
    }
  }
  // The simulated systems' keys (an indexed query, nothing decoded); a record is read only when
  // new or changed since the last tick.
  std::vector<std::pair<std::string, const fleet::SystemSpec*>> systems;
  {
    std::map<std::string, Known> known;
    ports::DeviceFilter simulated;
    simulated.is_simulated = true;
    std::string after;
    while (true) {
      auto page = context_.devices.ListKeys(simulated, after, kKeyPage);
      if (!page.ok()) return page.status();
      for (const auto& key : *page) {
        auto it = known_.find(key.remote_id);
        if (it != known_.end() && it->second.version == key.version) {
          known.insert(known_.extract(it));
          continue;
        }
        auto record = context_.devices.Get(key.remote_id);
        if (!record.ok()) return record.status();
        Known fresh{key.version, std::nullopt};
        if (record->has_value()) {
          const domain::DeviceRecord& d = **record;
          fresh.version = d.version;
          if (d.is_simulated && d.metadata && !d.inverter_rcpns.empty()) {
            fresh.spec = SimulatedSystemSpec(d.remote_id, d.rated_power_kw);
          }
        }
        known.insert_or_assign(key.remote_id, std::move(fresh));
      }
      if (page->size() < kKeyPage) break;
      after = page->back().remote_id;
    }
    known_ = std::move(known);
  }
  for (const auto& [id, k] : known_) {
    if (k.spec) systems.emplace_back(id, &*k.spec);
  }
  const auto ms = ToUnixMillis(now);
  const Timestamp slot = FromUnixMillis(ms - ms % interval_.count());

  std::set<std::string> alive;
  std::vector<std::string> records;
  struct Produced {
    std::string remote_id;
    Timestamp slot;
    fleet::SystemState state;
  };
  std::vector<Produced> produced;
  for (const auto& [remote_id, spec] : systems) {
    alive.insert(remote_id);
    auto it = running_.find(remote_id);
    if (it == running_.end() || it->second.spec != *spec) {
      Running fresh{*spec, fleet::InitialState(*spec), std::nullopt};
      it = running_.insert_or_assign(remote_id, std::move(fresh)).first;
    }
    Running& run = it->second;
    if (produced_until && (!run.last_slot || *run.last_slot < *produced_until)) run.last_slot = produced_until;
    if (run.last_slot && *run.last_slot >= slot) continue;
    // Every slot since the last record (the current one only at the first record), each
    // advancing the physics over the time since the one before.
    const std::int64_t due =
        run.last_slot ? std::min<std::int64_t>((slot - *run.last_slot) / interval_, kMaxSlotsPerTick) : 1;
    Timestamp previous = run.last_slot.value_or(slot - interval_);
    fleet::SystemState next = run.state;
    for (std::int64_t k = due - 1; k >= 0; --k) {
      const Timestamp t = slot - interval_ * k;
      auto record = fleet::NextRecord(run.spec, next, t, t - previous, {});
      previous = t;
      if (record) records.push_back(record->SerializeAsString());
    }
    produced.push_back({remote_id, slot, std::move(next)});
  }
  for (auto it = running_.begin(); it != running_.end();) {
    it = alive.count(it->first) ? std::next(it) : running_.erase(it);
  }
  if (records.empty()) return 0;
  Status sent = sink_(records);
  if (!sent.ok()) return sent;  // slots not marked: produced again next tick
  for (auto& p : produced) {    // commit the physics only once the records are stored
    Running& run = running_[p.remote_id];
    run.state = std::move(p.state);
    run.last_slot = p.slot;
  }
  if (!produced_until || *produced_until < slot) {
    // Best effort: lost, a takeover may produce this slot once more (Concerto keeps one point per
    // asset, metric and time).
    auto put = context_.coordination.PutValue(kProducedSlotKey, std::to_string(ToUnixMillis(slot)), watermark_version);
    if (!put.ok()) spdlog::warn("simulated telemetry: recording the produced slot failed: {}", put.status().ToString());
  }
  metrics_.records.Increment(static_cast<double>(records.size()));
  return static_cast<int>(records.size());
}

}  // namespace pwrcell::processes
