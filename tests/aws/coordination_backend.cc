// The coordination conformance suite's backend on moto: a DynamoDbCoordination on a table made for
// the test (deleted after it), and a second DynamoDbCoordination with its own AwsClient on the same
// table, as another process has, so that the suite's races run across the two.
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "adapters/aws/aws_client.h"
#include "adapters/aws/dynamodb_coordination.h"
#include "backends.h"
#include "moto.h"

namespace pwrcell::conformance {
namespace {

using adapters::aws::AwsClient;
using adapters::aws::DynamoDbCoordination;

class AwsBackend final : public Backend {
 public:
  ~AwsBackend() override {
    if (!table_.empty()) {
      // Best effort: moto forgets everything when it stops anyway.
      (void)client_->Call(adapters::aws::kDynamoDb, "DeleteTable", {{"TableName", table_}});
    }
  }

  std::shared_ptr<ports::DeviceStore> MakeStore() override {
    ADD_FAILURE() << "the coordination backend has no device store";
    return nullptr;
  }
  std::shared_ptr<ports::Queue> MakeQueue(int, const std::string&) override {
    ADD_FAILURE() << "the coordination backend has no queue";
    return nullptr;
  }

  std::shared_ptr<ports::Coordination> MakeCoordination() override {
    if (coordination_) return coordination_;
    const std::string table = aws_test::UniqueName("coordination");
    const Status created = DynamoDbCoordination::CreateTable(*client_, table);
    if (!created.ok()) {
      ADD_FAILURE() << "creating the coordination table: " << created.ToString();
      return nullptr;
    }
    table_ = table;
    coordination_ = Open(client_);
    return coordination_;
  }

  // Its own client (and so its own connections) on the same table.
  std::shared_ptr<ports::Coordination> MakeSecondCoordination() override {
    if (!second_coordination_ && !table_.empty()) {
      second_coordination_ = Open(std::make_shared<AwsClient>(aws_test::MotoOptions()));
    }
    return second_coordination_;
  }

  void AdvanceTime(Duration by) override { std::this_thread::sleep_for(by); }

 private:
  std::shared_ptr<ports::Coordination> Open(std::shared_ptr<AwsClient> client) {
    auto opened = DynamoDbCoordination::Open(std::move(client), table_);
    if (!opened.ok()) {
      ADD_FAILURE() << "opening the coordination table: " << opened.status().ToString();
      return nullptr;
    }
    return std::move(opened).value();
  }

  std::shared_ptr<AwsClient> client_ = std::make_shared<AwsClient>(aws_test::MotoOptions());
  std::string table_;
  std::shared_ptr<ports::Coordination> coordination_;
  std::shared_ptr<ports::Coordination> second_coordination_;
};

}  // namespace

std::vector<BackendFactory> AllBackends() {
  return {{"Aws", [] { return std::make_unique<AwsBackend>(); }}};
}

}  // namespace pwrcell::conformance
