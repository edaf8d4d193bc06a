// The Lambda functions of docs/LAMBDA.md: one composition root over the same processes, clients
// and store `serve` wires, choosing one handler by name (`_HANDLER`). Nothing of a process is
// written twice: a function is the process's handler behind the event shape its source sends
// (events.h), and its answer.
//
// Life cycle, as Lambda runs it: Create during initialisation (configuration only, no network
// call, so that a cold start is short); the store, the secrets and the clients are opened by the
// first invocation and kept for the next ones (an invocation that cannot open them fails, and the
// next one tries again).
//
// How each handler answers (docs/LAMBDA.md "The runtime"):
// - telemetry_processor (Kinesis): the records go through TelemetryProcessor::ProcessRecords in
//   chunks of 25; the first record that failed transiently is reported in batchItemFailures and
//   the chunks after its chunk are not processed (the mapping delivers everything from that
//   record again). Records after it in its own chunk may have been processed already and are
//   processed again on the redelivery: harmless, as for every at-least-once source
//   (last_heard_at only rises, Concerto de-duplicates points by asset, metric and timestamp).
//   Undecodable records are counted and skipped by the processor, never reported.
// The event is checked before the store is opened: an event of the wrong shape is an invocation
// error naming what is wrong, whatever the state of the store.
// - concerto_gateway, pwrcell_gateway (SQS): each message through ConcertoGateway::Handle /
//   PwrcellGateway::Handle. A transient failure is reported by messageId; after a failure that
//   means the service is down (unreachable, timing out), the rest of the batch is reported
//   without being tried. Each message reported is delivered again after serve's backoff (its
//   visibility timeout is set before the answer; while the service is down the backoff starts at
//   the queue's visibility timeout, so that max_receives deliveries span a long outage). A
//   permanent failure (a message that does not decode, a request the
//   service refuses) is sent to the queue's dead-letter queue, logged and counted, and not
//   reported (so SQS deletes it). Messages not started before the deadline (less a margin) are
//   reported.
// - registrar_poller, ces_state_poller, liveness_sweep, simulated_telemetry (schedules): one
//   Poll / Sweep / Tick; a failure is an invocation error.
//
// Rate limits across instances: a gateway's client keeps to its share of the limit (SharePerInstance).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"
#include "ports/clock.h"
#include "runtime/lambda/runtime_api.h"

namespace pwrcell::runtime::lambda {

enum class Handler {
  kTelemetryProcessor,
  kConcertoGateway,
  kPwrcellGateway,
  kRegistrarPoller,
  kCesStatePoller,
  kLivenessSweep,
  kSimulatedTelemetry,
};

// The metrics of the Lambda handlers themselves (the processes count their own), declared once.
struct LambdaMetrics {
  explicit LambdaMetrics(Metrics* registry);
  Counter<2> items;  // {handler, outcome=done|retry|dead_letter|not_started}
};

// "telemetry_processor" ... (the `_HANDLER` values); kInvalidArgument naming the valid ones.
Result<Handler> ParseHandler(std::string_view name);
std::string_view HandlerName(Handler handler);

// Each of `instances` instances may send one request per 1/r seconds, r = limit / instances - 1,
// so that in any one-second window an instance sends at most r + 1 and all of them together at
// most `limit` (docs/LAMBDA.md). When limit / instances < 2 that r would be below half the share:
// then r = limit / (2 instances), and the sum can exceed the limit in a window by up to
// `instances` requests (logged at creation). <= 0: unlimited.
double SharePerInstance(double limit, int instances);

// The configuration a function runs with: `config` with the Lambda defaults applied (the AWS
// backends) and checked. kInvalidArgument for `[backend] kind = "embedded"` or `[secrets] backend =
// "file"` (a function has no disk to keep them on) and for a missing `[aws] telemetry_stream`
// with the telemetry handler.
Result<config::Config> LambdaConfig(config::Config config, Handler handler);

// A failed invocation: its Lambda error.
struct InvocationError {
  LambdaError error;
};

class Function {
 public:
  // No network call. `clock` must outlive the function.
  static Result<std::unique_ptr<Function>> Create(const config::Config& config, Handler handler,
                                                  const ports::Clock& clock);
  ~Function();
  Function(const Function&) = delete;
  Function& operator=(const Function&) = delete;

  // One invocation: the event's JSON in, the answer's JSON out, or the error to report. Work not
  // started before `deadline` less a margin is left for the event source to deliver again.
  Result<std::string> Invoke(std::string_view event, std::chrono::system_clock::time_point deadline);

  Handler handler() const { return handler_; }
  Metrics& metrics() { return metrics_; }

 private:
  struct Parts;
  Function(config::Config config, Handler handler, const ports::Clock& clock);
  Status EnsureParts();
  Result<std::string> InvokeKinesis(std::string_view event, std::chrono::system_clock::time_point deadline);
  Result<std::string> InvokeSqs(std::string_view event, std::chrono::system_clock::time_point deadline);
  Result<std::string> InvokeScheduled(std::string_view event);

  const config::Config config_;
  const Handler handler_;
  const ports::Clock& clock_;
  Metrics metrics_;
  std::unique_ptr<Parts> parts_;  // opened by the first invocation
};

}  // namespace pwrcell::runtime::lambda
