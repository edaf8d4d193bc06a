// Test tool: writes the device records of a JSON array (as `devices list --json` prints them)
// into a device table, so the CLI tests have something to read. Not installed.
//   seed_devices DB_PATH DEVICES.json          a SQLite device table
//   seed_devices aws:TABLE DEVICES.json        the DynamoDB table TABLE (AWS credentials, region
//                                              and AWS_ENDPOINT_URL from the environment: moto)
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "adapters/aws/aws_client.h"
#include "adapters/aws/dynamodb_device_store.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "domain/device_json.h"

namespace {

pwrcell::Result<std::unique_ptr<pwrcell::ports::DeviceStore>> OpenStore(const std::string& where) {
  constexpr std::string_view kAwsPrefix = "aws:";
  if (where.rfind(kAwsPrefix, 0) == 0) {
    auto options = pwrcell::adapters::aws::AwsOptions::FromEnvironment();
    if (!options.ok()) return options.status();
    auto client = std::make_shared<pwrcell::adapters::aws::AwsClient>(std::move(*options));
    auto store = pwrcell::adapters::aws::DynamoDbDeviceStore::Open(client, where.substr(kAwsPrefix.size()));
    if (!store.ok()) return store.status();
    return std::unique_ptr<pwrcell::ports::DeviceStore>(std::move(*store));
  }
  auto store = pwrcell::adapters::SqliteDeviceStore::Open(where);
  if (!store.ok()) return store.status();
  return std::unique_ptr<pwrcell::ports::DeviceStore>(std::move(*store));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: seed_devices DB_PATH|aws:TABLE DEVICES.json\n";
    return 2;
  }
  std::ifstream in(argv[2]);
  const auto array = nlohmann::json::parse(in, nullptr, false);
  if (array.is_discarded() || !array.is_array()) {
    std::cerr << "seed_devices: " << argv[2] << " is not a JSON array\n";
    return 2;
  }
  auto store = OpenStore(argv[1]);
  if (!store.ok()) {
    std::cerr << "seed_devices: " << store.status().ToString() << "\n";
    return 1;
  }
  for (const auto& item : array) {
    auto device = pwrcell::domain::DeviceFromJson(item);
    if (!device.ok()) {
      std::cerr << "seed_devices: " << device.status().ToString() << "\n";
      return 1;
    }
    device->version = 0;
    auto stored = (*store)->Put(*device);
    if (!stored.ok()) {
      std::cerr << "seed_devices: " << stored.status().ToString() << "\n";
      return 1;
    }
  }
  return 0;
}
