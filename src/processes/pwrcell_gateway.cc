#include "processes/pwrcell_gateway.h"

#include <spdlog/spdlog.h>

#include "processes/device_updates.h"

namespace pwrcell::processes {

PwrcellGateway::PwrcellGateway(Context& context, ports::CesApi& ces, DeviceMetadataProcessor& metadata,
                               CesStateProcessor& state)
    : context_(context), ces_(ces), metadata_(metadata), state_(state) {}

Status PwrcellGateway::Handle(const CesRequest& request) {
  if (const auto* m = std::get_if<MetadataRequest>(&request)) {
    auto device = context_.devices.Get(m->remote_id);
    if (!device.ok()) return device.status();
    if (!device->has_value() || (*device)->is_simulated) return Status::Ok();  // gone, or served by us
    // The registrar asks only for metadata that is missing or older than metadata_refresh, and asks
    // again after request_repeat_after while an earlier request may still wait in the queue: when
    // CES answers fewer than fleet / request_repeat_after a second (a fleet's first registration),
    // the queue holds several requests per system. The first one answered makes the record current;
    // the rest are already answered and cost no CES call (else the backlog fed itself: 10,000
    // systems at ~20 answers/s grew the ces queue to 15,000 requests, bench/crash_loop.py).
    const auto& fetched = (*device)->metadata_fetched_at;
    if ((*device)->metadata && fetched && context_.clock.Now() - *fetched < context_.settings.metadata_refresh) {
      return Status::Ok();
    }
    auto metadata = ces_.GetMetadata(m->remote_id);
    if (metadata.ok()) return metadata_.Process(m->remote_id, *metadata);
    if (metadata.status().code() == StatusCode::kNotFound) {
      // CES does not know the system: an operator must look. Shown as CES status UNKNOWN (ERROR).
      spdlog::error("metadata: CES does not know system {} ({})", m->remote_id, metadata.status().message());
      domain::CesStatusBatch batch;
      batch.not_found.push_back(m->remote_id);
      return state_.Process(batch);
    }
    return metadata.status().WithContext("CES metadata of " + m->remote_id);
  }
  const auto& s = std::get<StatusRequest>(request);
  std::vector<std::string> ids;
  for (const auto& id : s.remote_ids) {
    auto device = context_.devices.Get(id);
    if (!device.ok()) return device.status();
    if (device->has_value() && !(*device)->is_simulated) ids.push_back(id);
  }
  if (ids.empty()) return Status::Ok();
  for (std::size_t begin = 0; begin < ids.size(); begin += ports::kMaxStatusBatch) {
    std::vector<std::string> chunk(
        ids.begin() + static_cast<std::ptrdiff_t>(begin),
        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), begin + ports::kMaxStatusBatch)));
    auto statuses = ces_.GetStatus(chunk);
    if (!statuses.ok())
      return statuses.status().WithContext("CES status of " + std::to_string(chunk.size()) + " systems");
    PWRCELL_RETURN_IF_ERROR(state_.Process(*statuses));
  }
  return Status::Ok();
}

}  // namespace pwrcell::processes
