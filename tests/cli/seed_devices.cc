// Test tool: writes the device records of a JSON array (as `devices list --json` prints them)
// into a SQLite device table, so the CLI tests have something to read. Not installed.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "adapters/sqlite/sqlite_device_store.h"
#include "domain/device_json.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: seed_devices DB_PATH DEVICES.json\n";
    return 2;
  }
  std::ifstream in(argv[2]);
  const auto array = nlohmann::json::parse(in, nullptr, false);
  if (array.is_discarded() || !array.is_array()) {
    std::cerr << "seed_devices: " << argv[2] << " is not a JSON array\n";
    return 2;
  }
  auto store = pwrcell::adapters::SqliteDeviceStore::Open(argv[1]);
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
