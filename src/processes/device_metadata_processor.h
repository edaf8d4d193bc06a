// device_metadata_processor (SPEC 3.6): stores what CES says about how a system is built
// (inverter RCP number, coupling, batteries, PV links, site) and, with AUTO_COMMISSIONING on,
// requests the commissioning of whatever Concerto still lacks. Invoked by pwrcell_gateway with a
// CES answer, and by the registrar with synthesized metadata for simulated systems.
// Thread-safe.
#pragma once

#include <string>

#include "common/status.h"
#include "domain/ces_types.h"
#include "processes/context.h"
#include "processes/process_metrics.h"

namespace pwrcell::processes {

class DeviceMetadataProcessor {
 public:
  explicit DeviceMetadataProcessor(Context& context);

  // Errors: transient store/queue errors (retry). A system no longer registered is not an error.
  Status Process(const std::string& remote_id, const domain::SystemMetadata& metadata);

 private:
  Context& context_;
  DeviceMetadataMetrics metrics_;
};

// With AUTO_COMMISSIONING on: marks the record PENDING and queues a commission request, unless one
// was queued recently. Off: shows the record as awaiting commissioning. Shared by the registrar and
// the metadata processor. Errors: transient store/queue errors.
Status RequestCommissioningIfNeeded(Context& context, const std::string& remote_id);

}  // namespace pwrcell::processes
