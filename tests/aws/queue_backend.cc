// The queue conformance suite's backend on moto: each named queue of a test is an SQS queue pair
// (the queue and "<queue>-dlq", RedrivePolicy maxReceiveCount = max_receives) made for the test by
// SqsQueue::CreateQueues under a unique name and deleted after it. Time passes for real.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "adapters/aws/aws_client.h"
#include "adapters/aws/sqs_queue.h"
#include "backends.h"
#include "moto.h"

namespace pwrcell::conformance {
namespace {

using adapters::aws::AwsClient;
using adapters::aws::kSqs;
using adapters::aws::SqsQueue;

class AwsBackend final : public Backend {
 public:
  ~AwsBackend() override {
    // Best effort: moto forgets everything when it stops anyway.
    for (const auto& [name, queue] : queues_) {
      (void)client_->Call(kSqs, "DeleteQueue", {{"QueueUrl", queue->Url()}});
      (void)client_->Call(kSqs, "DeleteQueue", {{"QueueUrl", queue->DeadLetterUrl()}});
    }
  }

  std::shared_ptr<ports::DeviceStore> MakeStore() override {
    ADD_FAILURE() << "the queue backend has no device store";
    return nullptr;
  }

  std::shared_ptr<ports::Queue> MakeQueue(int max_receives, const std::string& name) override {
    auto& queue = queues_[name];
    if (queue) return queue;
    const std::string sqs_name = aws_test::UniqueName("q-" + name);
    const Status created = SqsQueue::CreateQueues(*client_, sqs_name, max_receives);
    if (!created.ok()) {
      ADD_FAILURE() << "creating SQS queue " << sqs_name << ": " << created.ToString();
      queues_.erase(name);
      return nullptr;
    }
    auto opened = SqsQueue::Open(client_, sqs_name);
    if (!opened.ok()) {
      ADD_FAILURE() << "opening SQS queue " << sqs_name << ": " << opened.status().ToString();
      queues_.erase(name);
      return nullptr;
    }
    queue = std::move(opened).value();
    return queue;
  }

  std::shared_ptr<ports::Coordination> MakeCoordination() override {
    ADD_FAILURE() << "the queue backend has no coordination state";
    return nullptr;
  }
  std::shared_ptr<ports::Coordination> MakeSecondCoordination() override { return nullptr; }

  // SQS judges visibility by its own clock: sleep, a little longer than asked so that a message
  // whose timeout ends exactly then is visible (moto compares milliseconds strictly).
  void AdvanceTime(Duration by) override { std::this_thread::sleep_for(by + std::chrono::milliseconds(100)); }

 private:
  std::shared_ptr<AwsClient> client_ = std::make_shared<AwsClient>(aws_test::MotoOptions());
  std::map<std::string, std::shared_ptr<SqsQueue>> queues_;
};

}  // namespace

std::vector<BackendFactory> AllBackends() {
  return {{"Aws", [] { return std::make_unique<AwsBackend>(); }}};
}

}  // namespace pwrcell::conformance
