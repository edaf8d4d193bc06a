#include "processes/processes.h"

#include <utility>

namespace pwrcell::processes {

Processes::Processes(Context context_in, ports::ConcertoApi& concerto, ports::CesApi& ces, Duration simulated_interval,
                     SimulatedTelemetry::Sink simulated_sink)
    : context(std::move(context_in)),
      telemetry(context),
      metadata(context),
      ces_state(context),
      registrar(context, metadata),
      registrar_poller(context),
      ces_poller(context),
      concerto_gateway(context, concerto, registrar),
      pwrcell_gateway(context, ces, metadata, ces_state),
      simulated(context, simulated_interval, std::move(simulated_sink)) {}

bool IsOutage(const Status& status) {
  return status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded ||
         status.code() == StatusCode::kResourceExhausted;
}

}  // namespace pwrcell::processes
