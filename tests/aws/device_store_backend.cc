// The device store conformance suite (tests/conformance/device_store_conformance.cc, unchanged) on
// DynamoDB: moto_server, one freshly created table per test.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "adapters/aws/dynamodb_device_store.h"
#include "backends.h"
#include "moto.h"

namespace pwrcell::conformance {
namespace {

using adapters::aws::AwsClient;
using adapters::aws::DynamoDbDeviceStore;

class AwsBackend final : public Backend {
 public:
  ~AwsBackend() override {
    // The table goes with the test, so that a long run does not pile tables up in the server.
    if (!table_.empty()) (void)client_->Call(adapters::aws::kDynamoDb, "DeleteTable", {{"TableName", table_}});
  }

  std::shared_ptr<ports::DeviceStore> MakeStore() override {
    if (store_) return store_;
    const std::string table = aws_test::UniqueName("devices");
    const Status created = DynamoDbDeviceStore::CreateTable(*client_, table);
    if (!created.ok()) {
      ADD_FAILURE() << "creating the DynamoDB device table: " << created.ToString();
      return nullptr;
    }
    table_ = table;
    auto opened = DynamoDbDeviceStore::Open(client_, table);
    if (!opened.ok()) {
      ADD_FAILURE() << "opening the DynamoDB device table: " << opened.status().ToString();
      return nullptr;
    }
    store_ = std::move(opened).value();
    return store_;
  }
  // The device store suite needs no queue nor coordination state.
  std::shared_ptr<ports::Queue> MakeQueue(int, const std::string&) override {
    ADD_FAILURE() << "the DynamoDB device store backend has no queue";
    return nullptr;
  }
  std::shared_ptr<ports::Coordination> MakeCoordination() override {
    ADD_FAILURE() << "the DynamoDB device store backend has no coordination state";
    return nullptr;
  }
  std::shared_ptr<ports::Coordination> MakeSecondCoordination() override { return nullptr; }
  void AdvanceTime(Duration by) override { std::this_thread::sleep_for(by); }

 private:
  std::shared_ptr<AwsClient> client_ = std::make_shared<AwsClient>(aws_test::MotoOptions());
  std::string table_;
  std::shared_ptr<ports::DeviceStore> store_;
};

}  // namespace

std::vector<BackendFactory> AllBackends() {
  return {{"Aws", [] { return std::make_unique<AwsBackend>(); }}};
}

}  // namespace pwrcell::conformance
