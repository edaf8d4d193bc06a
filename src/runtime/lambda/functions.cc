#include "runtime/lambda/functions.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "adapters/aws/secrets_manager_secret_store.h"
#include "adapters/aws/sqs_queue.h"
#include "adapters/ces/ces_client.h"
#include "adapters/concerto/concerto_client.h"
#include "processes/messages.h"
#include "processes/processes.h"
#include "runtime/lambda/events.h"
#include "runtime/serve/process_graph.h"
#include "runtime/serve/queue_workers.h"
#include "runtime/serve/store.h"

namespace pwrcell::runtime::lambda {
namespace {

using SystemTime = std::chrono::system_clock::time_point;

constexpr std::array<std::pair<Handler, std::string_view>, 7> kHandlers = {{
    {Handler::kTelemetryProcessor, "telemetry_processor"},
    {Handler::kConcertoGateway, "concerto_gateway"},
    {Handler::kPwrcellGateway, "pwrcell_gateway"},
    {Handler::kRegistrarPoller, "registrar_poller"},
    {Handler::kCesStatePoller, "ces_state_poller"},
    {Handler::kLivenessSweep, "liveness_sweep"},
    {Handler::kSimulatedTelemetry, "simulated_telemetry"},
}};

// Work is not started with less than this left before the deadline: a Concerto or CES call, or a
// chunk of telemetry records, must have time to finish and its answer to be sent.
constexpr Duration kDeadlineMargin = std::chrono::seconds(2);
// Telemetry records go through the processor in chunks of this many, the deadline checked between.
constexpr std::size_t kTelemetryChunk = 25;

bool TimeLeft(SystemTime deadline) {
  return std::chrono::system_clock::now() + kDeadlineMargin < deadline;
}

// When a message that failed transiently is delivered again (its visibility timeout, set before
// the function answers): serve's two schedules (serve::WorkerOptionsFromConfig), base * 2^(n-1)
// after delivery n. While the service is down the base is the queue's visibility timeout and the
// cap two hours, so that the queue's max_receives deliveries span an outage of about
// visibility * (2^max_receives - 1) (31 min with the defaults: 60 s and 5 receives; SQS's
// redrive policy counts receives, maxReceiveCount = max_receives) before SQS dead-letters the
// message, instead of max_receives visibility timeouts. Lambda has no pool to pause: an outage
// longer than that ends in the dead-letter queue (logged, counted, redrivable), never silently.
Duration RetryDelay(const config::Config& config, int receive_count, bool outage) {
  // As serve::WorkerOptionsFromConfig sets them (that library is serve's, not linked here).
  serve::WorkerOptions options;
  const Duration visibility = config.queues.visibility_timeout_s;
  options.retry_base = std::min(Duration(std::chrono::seconds(5)), visibility);
  options.retry_max = std::max(visibility, Duration(std::chrono::seconds(60)));
  options.outage_retry_base = visibility;
  options.outage_retry_max = std::chrono::hours(2);
  return outage ? serve::QueueWorkers::OutageRetryDelay(options, receive_count)
                : serve::QueueWorkers::RetryDelay(options, receive_count);
}

}  // namespace

LambdaMetrics::LambdaMetrics(Metrics* registry)
    : items(registry, "pwrcell_lambda_batch_items_total",
            "Items of Kinesis and SQS events, by handler and outcome (done, retry, dead_letter, not_started)",
            {"handler", "outcome"}) {}

Result<Handler> ParseHandler(std::string_view name) {
  for (const auto& [handler, handler_name] : kHandlers) {
    if (handler_name == name) return handler;
  }
  std::string valid;
  for (const auto& [handler, handler_name] : kHandlers)
    valid += (valid.empty() ? "" : ", ") + std::string(handler_name);
  return InvalidArgumentError("unknown handler \"" + std::string(name) + "\" (_HANDLER must be one of " + valid + ")");
}

std::string_view HandlerName(Handler handler) {
  for (const auto& [h, name] : kHandlers) {
    if (h == handler) return name;
  }
  return "unknown";
}

double SharePerInstance(double limit, int instances) {
  if (limit <= 0) return 0;
  const double n = std::max(1, instances);
  const double share = limit / n;
  if (share >= 2) return share - 1;
  return share / 2;
}

Result<config::Config> LambdaConfig(config::Config config, Handler handler) {
  if (config.backend.kind != "aws") {
    return InvalidArgumentError("[backend] kind is \"" + config.backend.kind +
                                "\": a Lambda function keeps its state in the AWS backends (set it to \"aws\" or leave "
                                "PWRCELL_BACKEND_KIND unset)");
  }
  if (config.secrets.backend != "aws") {
    return InvalidArgumentError("[secrets] backend is \"" + config.secrets.backend +
                                "\": a Lambda function reads its secrets from Secrets Manager (set it to \"aws\" or "
                                "leave PWRCELL_SECRETS_BACKEND unset)");
  }
  if (handler == Handler::kTelemetryProcessor && config.aws.telemetry_stream.empty()) {
    return InvalidArgumentError("the telemetry_processor function needs [aws] telemetry_stream (its Kinesis stream)");
  }
  return config;
}

// Everything a function wires, in construction order (as serve's Parts): each member refers only
// to members above it.
struct Function::Parts {
  Parts(const config::Config& config, const ports::Clock& clock, Metrics& metrics, serve::Store opened)
      : store(std::move(opened)),
        secrets(store.aws),
        concerto(ConcertoOptions(config), secrets, clock, &metrics),
        ces(CesOptions(config), secrets, clock, &metrics),
        graph(serve::ProcessContext(store, clock, metrics, config), concerto, ces, config.simulated.record_interval_s,
              [this](const std::vector<std::string>& records) { return ProcessSimulated(records); }),
        lambda_metrics(&metrics) {}

  static adapters::ConcertoClientOptions ConcertoOptions(const config::Config& config) {
    auto options = adapters::ConcertoClientOptions::FromConfig(config.concerto);
    options.max_requests_per_second =
        SharePerInstance(config.concerto.max_requests_per_second,
                         config.lambda.concerto_control_concurrency + config.lambda.concerto_telemetry_concurrency);
    options.burst = 1;
    return options;
  }
  static adapters::CesClientOptions CesOptions(const config::Config& config) {
    auto options = adapters::CesClientOptions::FromConfig(config.ces);
    options.max_requests_per_second =
        SharePerInstance(config.ces.max_requests_per_second, config.lambda.ces_concurrency);
    options.burst = 1;
    return options;
  }

  // Simulated records go straight to the telemetry processor (serve sends them through its ingest
  // queue; a function has none): stored all or none, as a sink must.
  Status ProcessSimulated(const std::vector<std::string>& records) {
    std::vector<processes::StreamRecord> stream;
    stream.reserve(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) stream.push_back({records[i], "simulated/" + std::to_string(i)});
    for (const Status& status : graph.telemetry.ProcessRecords(stream)) {
      if (!status.ok()) return status;
    }
    return Status::Ok();
  }

  // The SQS queue of the store that `name` (an event's queue) is, or nullptr.
  adapters::aws::SqsQueue* QueueNamed(const config::Config& config, const std::string& name) {
    const std::array<std::pair<const std::string*, ports::Queue*>, 3> queues = {{
        {&config.aws.concerto_queue, store.concerto.get()},
        {&config.aws.concerto_telemetry_queue, store.concerto_telemetry.get()},
        {&config.aws.ces_queue, store.ces.get()},
    }};
    for (const auto& [configured, queue] : queues) {
      if (QueueNameOfArn(*configured) == name) return dynamic_cast<adapters::aws::SqsQueue*>(queue);
    }
    return nullptr;
  }

  serve::Store store;
  adapters::aws::SecretsManagerSecretStore secrets;
  adapters::ConcertoClient concerto;
  adapters::CesClient ces;
  processes::Processes graph;  // the handlers; simulated records go to ProcessSimulated
  LambdaMetrics lambda_metrics;
};

Function::Function(config::Config config, Handler handler, const ports::Clock& clock)
    : config_(std::move(config)), handler_(handler), clock_(clock) {}

Function::~Function() = default;

Result<std::unique_ptr<Function>> Function::Create(const config::Config& config, Handler handler,
                                                   const ports::Clock& clock) {
  auto checked = LambdaConfig(config, handler);
  if (!checked.ok()) return checked.status();
  const int concerto_instances =
      checked->lambda.concerto_control_concurrency + checked->lambda.concerto_telemetry_concurrency;
  if (handler == Handler::kConcertoGateway && checked->concerto.max_requests_per_second > 0 &&
      checked->concerto.max_requests_per_second / concerto_instances < 2) {
    spdlog::warn(
        "lambda: {} Concerto gateway instances share {} requests/s: below 2 each, a burst of all of them "
        "can exceed the limit within one second",
        concerto_instances, checked->concerto.max_requests_per_second);
  }
  return std::unique_ptr<Function>(new Function(std::move(*checked), handler, clock));
}

Status Function::EnsureParts() {
  if (parts_) return Status::Ok();
  serve::StoreOpenOptions options;
  options.ingest = false;
  auto store = serve::Store::Open(config_, clock_, &metrics_, options);
  if (!store.ok()) return store.status();
  parts_ = std::make_unique<Parts>(config_, clock_, metrics_, std::move(*store));
  return Status::Ok();
}

Result<std::string> Function::Invoke(std::string_view event, SystemTime deadline) {
  switch (handler_) {
    case Handler::kTelemetryProcessor:
      return InvokeKinesis(event, deadline);
    case Handler::kConcertoGateway:
    case Handler::kPwrcellGateway:
      return InvokeSqs(event, deadline);
    case Handler::kRegistrarPoller:
    case Handler::kCesStatePoller:
    case Handler::kLivenessSweep:
    case Handler::kSimulatedTelemetry:
      return InvokeScheduled(event);
  }
  return InternalError("unknown handler");
}

Result<std::string> Function::InvokeKinesis(std::string_view event, SystemTime deadline) {
  auto records = ParseKinesisEvent(event);
  if (!records.ok()) return records.status();
  PWRCELL_RETURN_IF_ERROR(EnsureParts());
  const std::string_view name = HandlerName(handler_);
  Counter<2>& items = parts_->lambda_metrics.items;
  for (std::size_t begin = 0; begin < records->size(); begin += kTelemetryChunk) {
    const std::size_t end = std::min(records->size(), begin + kTelemetryChunk);
    if (!TimeLeft(deadline)) {
      // The mapping delivers the rest again, from the first record not processed.
      items.Increment({name, "not_started"}, static_cast<double>(records->size() - begin));
      spdlog::warn("telemetry_processor: the deadline is near; records from {} on are left for the next delivery",
                   (*records)[begin].sequence_number);
      return BatchItemFailures({(*records)[begin].sequence_number});
    }
    std::vector<processes::StreamRecord> chunk;
    chunk.reserve(end - begin);
    for (std::size_t i = begin; i < end; ++i) {
      const auto& r = (*records)[i];
      chunk.push_back({r.data, r.event_id.empty() ? r.sequence_number : r.event_id});
    }
    const std::vector<Status> results = parts_->graph.telemetry.ProcessRecords(chunk);
    for (std::size_t i = 0; i < results.size(); ++i) {
      const Status& status = results[i];
      if (status.ok()) {
        items.Increment({name, "done"});
        continue;
      }
      if (status.IsRetryable()) {
        // Everything from this record on is delivered again (what came before it is done).
        items.Increment({name, "retry"}, static_cast<double>(records->size() - (begin + i)));
        spdlog::warn("telemetry_processor: record {} failed transiently ({}); reported for redelivery",
                     (*records)[begin + i].sequence_number, status.ToString());
        return BatchItemFailures({(*records)[begin + i].sequence_number});
      }
      // Not retryable and not a poison record the processor skipped itself: retrying cannot help.
      items.Increment({name, "dead_letter"});
      spdlog::error("telemetry_processor: record {} failed permanently ({}); skipped",
                    (*records)[begin + i].sequence_number, status.ToString());
    }
  }
  return BatchItemFailures({});
}

Result<std::string> Function::InvokeSqs(std::string_view event, SystemTime deadline) {
  auto records = ParseSqsEvent(event);
  if (!records.ok()) return records.status();
  PWRCELL_RETURN_IF_ERROR(EnsureParts());
  const std::string_view name = HandlerName(handler_);
  Counter<2>& items = parts_->lambda_metrics.items;
  std::vector<std::string> failed;
  std::vector<const SqsEventRecord*> to_delay;  // failed transiently: delivered again after a backoff
  bool down = false;                            // the service is down: the rest of the batch is not tried
  for (const SqsEventRecord& record : *records) {
    if (down || !TimeLeft(deadline)) {
      items.Increment({name, "not_started"});
      failed.push_back(record.message_id);
      if (down) to_delay.push_back(&record);
      continue;
    }
    const adapters::aws::SqsQueue::ForeignMessage message{record.message_id, record.body, record.encoding,
                                                          record.sent_at, record.receive_count};
    const std::string body = adapters::aws::SqsQueue::DecodeForeignBody(message, record.queue_name);
    Status status;
    if (handler_ == Handler::kConcertoGateway) {
      auto request = processes::DecodeConcertoRequest(body);
      status = request.ok() ? parts_->graph.concerto_gateway.Handle(*request) : request.status();
    } else {
      auto request = processes::DecodeCesRequest(body);
      status = request.ok() ? parts_->graph.pwrcell_gateway.Handle(*request) : request.status();
    }
    if (status.ok()) {
      items.Increment({name, "done"});
      continue;
    }
    if (status.IsRetryable()) {
      items.Increment({name, "retry"});
      spdlog::warn("{}: message {} (delivery {}) failed transiently: {}", name, record.message_id, record.receive_count,
                   status.ToString());
      failed.push_back(record.message_id);
      to_delay.push_back(&record);
      down = processes::IsOutage(status);  // the service is down, not this message wrong
      continue;
    }
    // Retrying cannot help: to the dead-letter queue at once (as serve's workers do), where
    // `queues dead-letters` shows it and `queues redrive` can send it back.
    adapters::aws::SqsQueue* queue = parts_->QueueNamed(config_, record.queue_name);
    const Status moved = queue != nullptr
                             ? queue->SendToDeadLetterQueue(message)
                             : FailedPreconditionError("queue " + record.queue_name + " is not one of this adapter's");
    if (!moved.ok()) {
      items.Increment({name, "retry"});
      spdlog::error("{}: message {} failed permanently ({}) and could not be dead-lettered ({}); delivered again", name,
                    record.message_id, status.ToString(), moved.ToString());
      failed.push_back(record.message_id);
      continue;
    }
    items.Increment({name, "dead_letter"});
    spdlog::error("{}: message {} of {} dead-lettered: {}", name, record.message_id, record.queue_name,
                  status.ToString());
  }
  for (const SqsEventRecord* record : to_delay) {
    adapters::aws::SqsQueue* queue = parts_->QueueNamed(config_, record->queue_name);
    if (queue == nullptr) continue;
    const Duration delay = RetryDelay(config_, record->receive_count, down);
    if (Status changed = queue->ChangeForeignVisibility(record->receipt_handle, delay); !changed.ok()) {
      // It comes back after the queue's visibility timeout instead.
      spdlog::warn("{}: message {}: could not delay its next delivery: {}", name, record->message_id,
                   changed.ToString());
    }
  }
  return BatchItemFailures(failed);
}

Result<std::string> Function::InvokeScheduled(std::string_view event) {
  PWRCELL_RETURN_IF_ERROR(CheckScheduledEvent(event));
  PWRCELL_RETURN_IF_ERROR(EnsureParts());
  Status status;
  switch (handler_) {
    case Handler::kRegistrarPoller:
      status = parts_->graph.registrar_poller.Poll();
      break;
    case Handler::kCesStatePoller:
      status = parts_->graph.ces_poller.Poll();
      break;
    case Handler::kLivenessSweep:
      status = parts_->graph.ces_state.Sweep();
      break;
    case Handler::kSimulatedTelemetry: {
      auto produced = parts_->graph.simulated.Tick();
      status = produced.status();
      break;
    }
    default:
      return InternalError("not a scheduled handler");
  }
  if (!status.ok()) return status;
  return std::string(R"({"handler":")") + std::string(HandlerName(handler_)) + R"(","ok":true})";
}

}  // namespace pwrcell::runtime::lambda
