// pwrcell_gateway (SPEC 3.5): the only process that talks to CES (through ports::CesApi, whose
// implementation does the API key, rate limiting, timeouts and retries). Executes get_metadata
// and get_status and invokes device_metadata_processor or ces_state_processor with the answer.
// Simulated systems never reach CES. Thread-safe.
#pragma once

#include "common/status.h"
#include "ports/ces_api.h"
#include "processes/ces_state.h"
#include "processes/context.h"
#include "processes/device_metadata_processor.h"
#include "processes/messages.h"

namespace pwrcell::processes {

class PwrcellGateway {
 public:
  PwrcellGateway(Context& context, ports::CesApi& ces, DeviceMetadataProcessor& metadata, CesStateProcessor& state);

  // OK -> delete the message; retryable -> deliver again; else dead-letter.
  Status Handle(const CesRequest& request);

 private:
  Context& context_;
  ports::CesApi& ces_;
  DeviceMetadataProcessor& metadata_;
  CesStateProcessor& state_;
};

}  // namespace pwrcell::processes
