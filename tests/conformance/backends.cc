#include "backends.h"

#include <sys/stat.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "adapters/file/file_secret_store.h"
#include "adapters/memory/clocks.h"
#include "adapters/memory/memory_coordination.h"
#include "adapters/memory/memory_device_store.h"
#include "adapters/memory/memory_queue.h"
#include "adapters/memory/memory_secret_store.h"
#include "adapters/sqlite/sqlite_coordination.h"
#include "adapters/sqlite/sqlite_database.h"
#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/sqlite/sqlite_queue.h"

namespace pwrcell::conformance {
namespace {

class MemoryBackend final : public Backend {
 public:
  std::shared_ptr<ports::DeviceStore> MakeStore() override {
    if (!store_) store_ = std::make_shared<adapters::MemoryDeviceStore>();
    return store_;
  }
  std::shared_ptr<ports::Queue> MakeQueue(int max_receives, const std::string& name) override {
    auto& queue = queues_[name];
    if (!queue) queue = std::make_shared<adapters::MemoryQueue>(clock_, max_receives);
    return queue;
  }
  std::shared_ptr<ports::Coordination> MakeCoordination() override {
    if (!coordination_) coordination_ = std::make_shared<adapters::MemoryCoordination>();
    return coordination_;
  }
  std::shared_ptr<ports::Coordination> MakeSecondCoordination() override { return nullptr; }
  void AdvanceTime(Duration by) override { clock_.Advance(by); }
  std::shared_ptr<ports::SecretStore> MakeSecretStore(const std::map<std::string, std::string>& initial) override {
    return std::make_shared<adapters::MemorySecretStore>(initial);
  }

 private:
  adapters::FakeClock clock_;  // declared first: outlives the queues that read it
  std::shared_ptr<ports::DeviceStore> store_;
  std::shared_ptr<ports::Coordination> coordination_;
  std::map<std::string, std::shared_ptr<ports::Queue>> queues_;
};

// Every store and queue of a test lives in one file, on one shared connection, as in `serve`.
class SqliteBackend final : public Backend {
 public:
  std::shared_ptr<ports::DeviceStore> MakeStore() override {
    if (!store_ && Database()) {
      auto store = adapters::SqliteDeviceStore::Create(database_);
      if (!store.ok()) {
        ADD_FAILURE() << "opening the SQLite device store: " << store.status().ToString();
        return nullptr;
      }
      store_ = std::move(store).value();
    }
    return store_;
  }
  std::shared_ptr<ports::Queue> MakeQueue(int max_receives, const std::string& name) override {
    auto& queue = queues_[name];
    if (!queue && Database()) {
      auto opened = adapters::SqliteQueue::Create(database_, name, clock_, max_receives);
      if (!opened.ok()) {
        ADD_FAILURE() << "opening the SQLite queue " << name << ": " << opened.status().ToString();
        return nullptr;
      }
      queue = std::move(opened).value();
    }
    return queue;
  }
  std::shared_ptr<ports::Coordination> MakeCoordination() override {
    if (!coordination_ && Database()) {
      auto opened = adapters::SqliteCoordination::Create(database_);
      if (!opened.ok()) {
        ADD_FAILURE() << "opening the SQLite coordination tables: " << opened.status().ToString();
        return nullptr;
      }
      coordination_ = std::move(opened).value();
    }
    return coordination_;
  }
  // Its own SqliteDatabase (connection, mutex, statement cache) on the same file: what another
  // process has.
  std::shared_ptr<ports::Coordination> MakeSecondCoordination() override {
    if (!second_coordination_) {
      auto opened = adapters::SqliteCoordination::Open(Path());
      if (!opened.ok()) {
        ADD_FAILURE() << "opening the SQLite coordination tables again: " << opened.status().ToString();
        return nullptr;
      }
      second_coordination_ = std::move(opened).value();
    }
    return second_coordination_;
  }
  void AdvanceTime(Duration by) override { clock_.Advance(by); }
  // The secrets of the embedded backend are not in the SQLite file but in `serve`'s secrets file
  // (adapters/file), written here as an operator would: a JSON object, mode 0600.
  std::shared_ptr<ports::SecretStore> MakeSecretStore(const std::map<std::string, std::string>& initial) override {
    nlohmann::json secrets = nlohmann::json::object();
    for (const auto& [id, value] : initial) secrets[id] = nlohmann::json::parse(value);
    std::ofstream(SecretsPath()) << secrets.dump(2) << "\n";
    ::chmod(SecretsPath().c_str(), S_IRUSR | S_IWUSR);
    return OpenSecrets();
  }
  std::shared_ptr<ports::SecretStore> MakeSecondSecretStore() override { return OpenSecrets(); }

 private:
  std::string Path() const { return (dir_.Path() / "adapter.db").string(); }
  std::string SecretsPath() const { return (dir_.Path() / "secrets.json").string(); }

  std::shared_ptr<ports::SecretStore> OpenSecrets() {
    auto opened = adapters::FileSecretStore::Open(SecretsPath());
    if (!opened.ok()) {
      ADD_FAILURE() << "opening the secrets file: " << opened.status().ToString();
      return nullptr;
    }
    return std::move(opened).value();
  }

  bool Database() {
    if (database_) return true;
    auto opened = adapters::SqliteDatabase::Open(Path());
    if (!opened.ok()) {
      ADD_FAILURE() << "opening the SQLite database: " << opened.status().ToString();
      return false;
    }
    database_ = std::move(opened).value();
    return true;
  }

  // Declaration order is destruction order reversed: the file goes last, the clock after the queues.
  TempDir dir_;
  adapters::FakeClock clock_;
  std::shared_ptr<adapters::SqliteDatabase> database_;
  std::shared_ptr<ports::DeviceStore> store_;
  std::map<std::string, std::shared_ptr<ports::Queue>> queues_;
  std::shared_ptr<ports::Coordination> coordination_;
  std::shared_ptr<ports::Coordination> second_coordination_;
};

}  // namespace

std::vector<BackendFactory> AllBackends() {
  return {
      {"Memory", [] { return std::make_unique<MemoryBackend>(); }},
      {"Sqlite", [] { return std::make_unique<SqliteBackend>(); }},
  };
}

}  // namespace pwrcell::conformance
