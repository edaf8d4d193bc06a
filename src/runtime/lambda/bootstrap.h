// The custom runtime's main loop (docs/LAMBDA.md "The runtime"), over the environment Lambda
// gives the `bootstrap` process:
//   AWS_LAMBDA_RUNTIME_API  host:port of the runtime API (required)
//   _HANDLER                which function this is (functions.h's names)
//   PWRCELL_CONFIG          optional: a deployment.toml to read before the environment overrides
//   every key of deployment.toml as PWRCELL_<SECTION>_<KEY> or the seeds' names (src/config);
//   [backend] kind and [secrets] backend default to "aws" here.
// Initialisation reads the configuration and creates the function (no network call); a failure
// is posted to /runtime/init/error and the process exits 1. Then, forever: /next, the handler,
// /response or /error; the trace id goes to _X_AMZN_TRACE_ID for the invocation, and the metrics
// that moved are written to `metrics_out` as EMF lines (emf.h). The logs go to stderr.
#pragma once

#include <ostream>

#include "config/config.h"

namespace pwrcell::runtime::lambda {

// Returns only when the runtime API cannot be reached (1) or initialisation failed (1).
int RunBootstrap(const config::Environment& environment, std::ostream& metrics_out);

}  // namespace pwrcell::runtime::lambda
