// The process graph (processes::Processes) over the ports of a store: the construction `serve`
// (serve.cc) and the Lambda functions (runtime/lambda/functions.cc) share.
#pragma once

#include "common/metrics.h"
#include "config/config.h"
#include "ports/clock.h"
#include "processes/context.h"
#include "processes/settings_from_config.h"
#include "runtime/serve/store.h"

namespace pwrcell::runtime::serve {

// The processes' Context over `store` (its device table, queues and coordination) with the
// settings of `config`. No source progress: the caller sets it once it knows its telemetry source.
// `store`, `clock` and `metrics` must outlive the Context.
inline processes::Context ProcessContext(Store& store, const ports::Clock& clock, Metrics& metrics,
                                         const config::Config& config) {
  return processes::Context{
      *store.devices, *store.concerto, *store.concerto_telemetry, *store.ces,
      clock,          metrics,         *store.coordination,       processes::SettingsFromConfig(config),
      nullptr};
}

}  // namespace pwrcell::runtime::serve
