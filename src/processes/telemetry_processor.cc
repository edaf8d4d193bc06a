#include "processes/telemetry_processor.h"

#include <spdlog/spdlog.h>

#include "domain/record_decoding.h"
#include "domain/telemetry_mapping.h"
#include "processes/device_updates.h"
#include "processes/messages.h"

namespace pwrcell::processes {

TelemetryProcessor::TelemetryProcessor(Context& context) : context_(context), metrics_(&context.metrics) {}

std::vector<Status> TelemetryProcessor::ProcessRecords(const std::vector<StreamRecord>& records) {
  std::vector<Status> results(records.size());
  // Points produced per record, so that a failed enqueue fails exactly the records whose points
  // it carried.
  std::vector<std::pair<std::size_t, std::vector<domain::TelemetryPoint>>> produced;

  for (std::size_t i = 0; i < records.size(); ++i) {
    const StreamRecord& record = records[i];
    auto decoded = domain::DecodeRecordSet(record.data);
    if (!decoded.ok()) {
      metrics_.records.Increment({"undecodable"});
      spdlog::warn("telemetry: skipping record {}: {}", record.sequence, decoded.status().message());
      continue;  // poison: OK, never retried
    }
    const auto& set = *decoded;
    auto found = context_.devices.FindByInverterRcpn(set.inverterid());
    if (!found.ok()) {
      results[i] = found.status().WithContext("looking up inverter " + set.inverterid());
      metrics_.records.Increment({"retried"});
      continue;
    }
    if (!found->has_value()) {
      metrics_.records.Increment({"unmatched"});
      spdlog::debug("telemetry: record {} from inverter {} matches no registered system; dropped", record.sequence,
                    set.inverterid());
      continue;
    }
    const domain::DeviceRecord& device = **found;
    domain::MappingResult mapped = domain::MapRecordSet(set, device);
    if (mapped.newest_timestamp) {
      const Timestamp newest = *mapped.newest_timestamp;
      auto updated = MutateDevice(
          context_.devices, device.remote_id,
          [&](domain::DeviceRecord& d) {
            bool changed = d.RaiseLastHeard(newest);
            // Per inverter (a system may have several): this inverter's newest record wins, whatever
            // its other inverters sent since.
            if (mapped.inverter_state && mapped.sys_mode) {
              changed |= d.RecordInverterReading({set.inverterid(), *mapped.inverter_state, *mapped.sys_mode, newest});
            }
            return changed;
          },
          context_.clock);
      if (!updated.ok()) {
        results[i] = updated.status();
        metrics_.records.Increment({"retried"});
        continue;
      }
    }
    metrics_.records.Increment({"decoded"});
    if (mapped.unmapped_channels > 0) {
      metrics_.unmapped_channels.Increment(mapped.unmapped_channels);
      for (const auto& detail : mapped.details) spdlog::debug("telemetry: {}: {}", device.remote_id, detail);
    }
    if (!mapped.points.empty()) produced.emplace_back(i, std::move(mapped.points));
  }

  // Pack the points of consecutive records into messages of at most 500 points, then send the
  // messages in batches of the queue's limit.
  struct Message {
    std::vector<domain::TelemetryPoint> points;
    std::vector<std::size_t> records;
  };
  std::vector<Message> messages;
  for (auto& [index, points] : produced) {
    for (auto& batch : domain::SplitIntoBatches(std::move(points))) {
      if (messages.empty() || messages.back().points.size() + batch.size() > domain::kMaxPointsPerIngest) {
        messages.emplace_back();
      }
      auto& message = messages.back();
      message.points.insert(message.points.end(), batch.begin(), batch.end());
      if (message.records.empty() || message.records.back() != index) message.records.push_back(index);
    }
  }
  for (std::size_t begin = 0; begin < messages.size(); begin += ports::kMaxQueueBatch) {
    const std::size_t end = std::min(messages.size(), begin + ports::kMaxQueueBatch);
    std::vector<std::string> bodies;
    std::size_t points = 0;
    for (std::size_t k = begin; k < end; ++k) {
      points += messages[k].points.size();
      bodies.push_back(EncodeConcertoRequest(PushTelemetryRequest{std::move(messages[k].points)}));
    }
    auto sent = context_.concerto_telemetry_queue.SendBatch(bodies);
    if (!sent.ok()) {
      Status failure = sent.status().WithContext("queueing telemetry points");
      for (std::size_t k = begin; k < end; ++k) {
        for (std::size_t index : messages[k].records) results[index] = failure;
      }
      continue;
    }
    metrics_.points.Increment(static_cast<double>(points));
  }
  return results;
}

}  // namespace pwrcell::processes
