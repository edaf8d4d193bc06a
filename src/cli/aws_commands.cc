// `pwrcell-adapter aws setup`: creates the AWS resources `[backend] kind = "aws"` needs, named in
// the configuration's [aws] section, with the schemas the adapters expect. Idempotent: what exists
// is left as it is (and reported). For a first deployment, a test account or moto; production
// stacks come from infrastructure as code (README "Running on AWS").
#include <spdlog/spdlog.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "adapters/aws/aws_client.h"
#include "adapters/aws/dynamodb_coordination.h"
#include "adapters/aws/dynamodb_device_store.h"
#include "adapters/aws/sqs_queue.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "config/config.h"
#include "runtime/serve/store.h"

namespace pwrcell::cli {
namespace {

// Creates the stream with `shards` shards unless it exists, then waits until it is ACTIVE.
Status CreateStream(const adapters::aws::AwsClient& client, const std::string& stream, int shards, std::ostream& out) {
  using adapters::aws::kKinesis;
  adapters::aws::AwsError error;
  auto created = client.Call(kKinesis, "CreateStream", {{"StreamName", stream}, {"ShardCount", shards}}, &error);
  if (created.ok()) {
    out << "created Kinesis stream " << stream << " (" << shards << " shards)\n";
  } else if (error.code == "ResourceInUseException") {
    out << "Kinesis stream " << stream << " exists\n";
  } else {
    return created.status().WithContext("Kinesis stream " + stream);
  }
  for (int attempt = 0; attempt < 120; ++attempt) {
    auto described = client.Call(kKinesis, "DescribeStreamSummary", {{"StreamName", stream}});
    if (!described.ok()) return described.status().WithContext("Kinesis stream " + stream);
    if ((*described)["StreamDescriptionSummary"].value("StreamStatus", "") == "ACTIVE") return Status::Ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return DeadlineExceededError("Kinesis stream " + stream + " is not ACTIVE after 60 s");
}

}  // namespace

int AwsSetup(const std::string& config_path, int stream_shards, std::ostream& out, std::ostream& err) {
  auto loaded = config::LoadConfigFile(config_path, config::ProcessEnvironment());
  if (!loaded.ok()) {
    err << "aws setup: " << loaded.status().ToString() << "\n";
    return ExitCodeFor(Step::kLoadConfig, loaded.status());
  }
  const config::Config& cfg = *loaded;
  auto options = runtime::serve::AwsOptionsFromConfig(cfg);
  if (!options.ok()) {
    err << "aws setup: " << options.status().ToString() << "\n";
    return kExitBadConfig;
  }
  adapters::aws::AwsClient client(std::move(*options));
  const auto report = [&](const Status& status, const std::string& what) {
    if (status.ok()) {
      out << what << " ready\n";
      return true;
    }
    err << "aws setup: " << what << ": " << status.ToString() << "\n";
    return false;
  };
  if (!report(adapters::aws::DynamoDbDeviceStore::CreateTable(client, cfg.aws.device_table),
              "DynamoDB table " + cfg.aws.device_table)) {
    return kExitFailure;
  }
  if (!report(adapters::aws::DynamoDbCoordination::CreateTable(client, cfg.aws.coordination_table),
              "DynamoDB table " + cfg.aws.coordination_table)) {
    return kExitFailure;
  }
  for (const std::string* queue :
       {&cfg.aws.ingest_queue, &cfg.aws.concerto_queue, &cfg.aws.concerto_telemetry_queue, &cfg.aws.ces_queue}) {
    if (!report(adapters::aws::SqsQueue::CreateQueues(client, *queue, cfg.queues.max_receives),
                "SQS queue " + *queue + " and its dead-letter queue " + *queue + "-dlq")) {
      return kExitFailure;
    }
  }
  if (!cfg.aws.telemetry_stream.empty()) {
    if (!report(CreateStream(client, cfg.aws.telemetry_stream, stream_shards, out),
                "Kinesis stream " + cfg.aws.telemetry_stream)) {
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace pwrcell::cli
