#include "processes/telemetry_processor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "domain/record_decoding.h"
#include "domain/telemetry_mapping.h"
#include "processes/messages.h"

namespace pwrcell::processes {
namespace {

// The device one inverterId resolves to in this batch.
struct Match {
  Status status;  // not OK: the look-up failed (the records of this inverter are retried)
  std::shared_ptr<const domain::DeviceRecord> device;  // nullptr: no such system
};

// What the batch heard from one (device, inverter): the newest timestamp and, from the record
// holding it, the inverter's reading.
struct Heard {
  Timestamp newest;
  std::optional<domain::InverterReading> reading;
};

}  // namespace

TelemetryProcessor::TelemetryProcessor(Context& context, std::size_t device_cache_size)
    : context_(context), metrics_(&context.metrics), device_cache_size_(std::max<std::size_t>(1, device_cache_size)) {}

Result<std::shared_ptr<const domain::DeviceRecord>> TelemetryProcessor::Device(const std::string& remote_id,
                                                                               std::int64_t version) {
  {
    std::lock_guard lock(cache_mutex_);
    auto found = cache_.find(remote_id);
    if (found != cache_.end() && found->second->version == version) return found->second;
  }
  auto read = context_.devices.Get(remote_id);
  if (!read.ok()) return read.status();
  if (!read->has_value()) return std::shared_ptr<const domain::DeviceRecord>();
  auto device = std::make_shared<const domain::DeviceRecord>(std::move(**read));
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= device_cache_size_ && !cache_.contains(remote_id)) cache_.clear();  // start afresh
  auto& slot = cache_[remote_id];
  if (slot == nullptr || slot->version <= device->version) slot = device;
  return device;
}

std::vector<Status> TelemetryProcessor::ProcessRecords(const std::vector<StreamRecord>& records) {
  return Prepare(records)();
}

TelemetryProcessor::Apply TelemetryProcessor::Prepare(const std::vector<StreamRecord>& records) {
  // What Apply needs: the results so far, the device writes and the encoded queue messages.
  struct Round {
    std::vector<Status> results;
    std::vector<ports::HeardUpdate> updates;
    std::vector<std::size_t> heard_records;  // the records whose liveness `updates` carry
    std::vector<std::string> bodies;         // push_telemetry messages
    std::vector<std::size_t> body_points;
    std::vector<std::vector<std::size_t>> body_records;  // the records each message carries
  };
  auto round = std::make_shared<Round>();
  std::vector<Status>& results = round->results;
  results.resize(records.size());

  // 1. Decode; resolve each distinct inverterId once.
  std::vector<std::optional<pwrcell::ces::v1::EnergyRecordSet>> sets(records.size());
  std::unordered_map<std::string, Match> matches;
  for (std::size_t i = 0; i < records.size(); ++i) {
    auto decoded = domain::DecodeRecordSet(records[i].data);
    if (!decoded.ok()) {
      metrics_.records.Increment({"undecodable"});
      spdlog::warn("telemetry: skipping record {}: {}", records[i].sequence, decoded.status().message());
      continue;  // poison: OK, never retried
    }
    sets[i] = std::move(*decoded);
    const std::string& rcpn = sets[i]->inverterid();
    if (matches.contains(rcpn)) continue;
    Match& match = matches[rcpn];
    auto key = context_.devices.FindKeyByInverterRcpn(rcpn);
    if (!key.ok()) {
      match.status = key.status().WithContext("looking up inverter " + rcpn);
      continue;
    }
    if (!key->has_value()) continue;
    auto device = Device((*key)->remote_id, (*key)->version);
    if (!device.ok()) {
      match.status = device.status().WithContext("reading device " + (*key)->remote_id);
      continue;
    }
    match.device = std::move(*device);
  }

  // 2. Map; gather what was heard per (device, inverter).
  std::vector<std::pair<std::size_t, std::vector<domain::TelemetryPoint>>> produced;
  std::unordered_map<std::string, Heard> heard;                  // by remote_id + '\n' + inverterId
  std::vector<std::pair<std::string, std::string>> heard_order;  // (remote_id, key), first-heard order
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (!sets[i]) continue;
    const auto& set = *sets[i];
    const Match& match = matches[set.inverterid()];
    if (!match.status.ok()) {
      results[i] = match.status;
      metrics_.records.Increment({"retried"});
      continue;
    }
    if (match.device == nullptr) {
      metrics_.records.Increment({"unmatched"});
      spdlog::debug("telemetry: record {} from inverter {} matches no registered system; dropped", records[i].sequence,
                    set.inverterid());
      continue;
    }
    const domain::DeviceRecord& device = *match.device;
    domain::MappingResult mapped = domain::MapRecordSet(set, device);
    if (mapped.newest_timestamp) {
      const Timestamp newest = *mapped.newest_timestamp;
      std::string key = device.remote_id + '\n' + set.inverterid();
      auto [entry, inserted] = heard.try_emplace(key);
      Heard& h = entry->second;
      if (inserted) {
        heard_order.emplace_back(device.remote_id, std::move(key));
        h.newest = newest;
      }
      // Per inverter (a system may have several): this inverter's newest record wins.
      if (mapped.inverter_state && mapped.sys_mode && (!h.reading || h.reading->at <= newest)) {
        h.reading = domain::InverterReading{set.inverterid(), *mapped.inverter_state, *mapped.sys_mode, newest};
      }
      h.newest = std::max(h.newest, newest);
      round->heard_records.push_back(i);
    } else {
      metrics_.records.Increment({"decoded"});  // nothing usable to record (DecodeRecordSet rejects such sets)
    }
    if (mapped.unmapped_channels > 0) {
      metrics_.unmapped_channels.Increment(mapped.unmapped_channels);
      for (const auto& detail : mapped.details) spdlog::debug("telemetry: {}: {}", device.remote_id, detail);
    }
    if (!mapped.points.empty()) produced.emplace_back(i, std::move(mapped.points));
  }
  round->updates.reserve(heard.size());
  for (const auto& [remote_id, key] : heard_order) {
    const Heard& h = heard[key];
    round->updates.push_back({remote_id, h.newest, h.reading});
  }

  // 3. Pack the points into messages of 500 (the last one holds the rest) and encode them. Every
  // record with points has a usable timestamp, so it is among heard_records.
  std::vector<domain::TelemetryPoint> pending;
  std::vector<std::size_t> pending_records;
  auto flush = [&] {
    if (pending.empty()) return;
    round->body_points.push_back(pending.size());
    round->bodies.push_back(EncodeConcertoRequest(PushTelemetryRequest{std::move(pending)}));
    round->body_records.push_back(std::move(pending_records));
    pending.clear();
    pending_records.clear();
  };
  for (auto& [index, points] : produced) {
    for (auto& point : points) {
      if (pending.size() == domain::kMaxPointsPerIngest) flush();
      pending.push_back(std::move(point));
      if (pending_records.empty() || pending_records.back() != index) pending_records.push_back(index);
    }
  }
  flush();

  // 4 (Apply). One device write for what the batch heard, then the messages in batches of the
  // queue's limit. A failed send fails exactly the records whose points it carried.
  return [this, round]() -> std::vector<Status> {
    std::vector<Status>& out = round->results;
    if (!round->updates.empty()) {
      Status stored = context_.devices.RecordHeardBatch(round->updates);
      if (!stored.ok()) {
        // Nothing of these records is kept: they come back, points and all.
        const Status failure = stored.WithContext("recording what telemetry heard");
        for (std::size_t index : round->heard_records) out[index] = failure;
        metrics_.records.Increment({"retried"}, static_cast<double>(round->heard_records.size()));
        return out;
      }
    }
    for (std::size_t begin = 0; begin < round->bodies.size(); begin += ports::kMaxQueueBatch) {
      const std::size_t end = std::min(round->bodies.size(), begin + ports::kMaxQueueBatch);
      std::vector<std::string> bodies(
          std::make_move_iterator(round->bodies.begin() + static_cast<std::ptrdiff_t>(begin)),
          std::make_move_iterator(round->bodies.begin() + static_cast<std::ptrdiff_t>(end)));
      auto sent = context_.concerto_telemetry_queue.SendBatch(bodies);
      if (!sent.ok()) {
        Status failure = sent.status().WithContext("queueing telemetry points");
        for (std::size_t k = begin; k < end; ++k) {
          for (std::size_t index : round->body_records[k]) out[index] = failure;
        }
        continue;
      }
      std::size_t points = 0;
      for (std::size_t k = begin; k < end; ++k) points += round->body_points[k];
      metrics_.points.Increment(static_cast<double>(points));
    }
    for (std::size_t index : round->heard_records)
      metrics_.records.Increment({out[index].ok() ? "decoded" : "retried"});
    return out;
  };
}

}  // namespace pwrcell::processes
