// The backends the conformance suites run on (Arrow's pattern: one suite, every backend).
// A backend owns what its stores and queues need (a clock, a temporary file) for one test.
// To add DynamoDB/SQS: implement Backend (AdvanceTime sleeps there) and list it in AllBackends().
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/time.h"
#include "ports/coordination.h"
#include "ports/device_store.h"
#include "ports/queue.h"
#include "ports/secret_store.h"

namespace pwrcell::conformance {

class Backend {
 public:
  virtual ~Backend() = default;
  // The device store of this test: the same object on every call, empty at the start.
  // nullptr (with a recorded test failure) when it cannot be opened.
  virtual std::shared_ptr<ports::DeviceStore> MakeStore() = 0;
  // The queue called `name`: the same object for the same name within a test, empty at first.
  // nullptr (with a recorded test failure) when it cannot be opened.
  virtual std::shared_ptr<ports::Queue> MakeQueue(int max_receives, const std::string& name = "test") = 0;
  // The coordination state of this test: the same object on every call, empty at the start.
  // nullptr (with a recorded test failure) when it cannot be opened.
  virtual std::shared_ptr<ports::Coordination> MakeCoordination() = 0;
  // The same coordination state through a second, independent connection, as another process
  // sees it (SQLite: another SqliteDatabase::Open of the same file), so that races can run across
  // connections; the same object on every call. nullptr when the backend has no such thing (the
  // in-memory fake lives in one object): the tests then use MakeCoordination()'s object. Call it
  // after MakeCoordination().
  virtual std::shared_ptr<ports::Coordination> MakeSecondCoordination() = 0;
  // Moves the time that visibility timeouts are judged by.
  virtual void AdvanceTime(Duration by) = 0;
  // The secret store of this test, holding `initial` (secret id -> JSON text) as the backend's
  // operator would have created them (Secrets Manager: CreateSecret; the file backend: the file).
  // Call it once per test. nullptr (with a recorded test failure) when it cannot be made; the
  // default is for backends without a secret store (the AWS suites of the other ports).
  virtual std::shared_ptr<ports::SecretStore> MakeSecretStore(const std::map<std::string, std::string>& initial) {
    (void)initial;
    ADD_FAILURE() << "this backend has no secret store";
    return nullptr;
  }
  // The same secrets through a second, independent object, as another process sees them (the file
  // opened again, another AWS client); nullptr when the backend has no such thing (the in-memory
  // store lives in one object): the tests then use MakeSecretStore()'s. Call it after that.
  virtual std::shared_ptr<ports::SecretStore> MakeSecondSecretStore() { return nullptr; }
};

struct BackendFactory {
  std::string name;  // a gtest name: letters and digits only
  std::function<std::unique_ptr<Backend>()> make;
};

std::vector<BackendFactory> AllBackends();

// gtest prints the parameter in failure messages; the name says which backend failed.
inline void PrintTo(const BackendFactory& backend, std::ostream* os) {
  *os << backend.name;
}

inline std::string BackendName(const ::testing::TestParamInfo<BackendFactory>& info) {
  return info.param.name;
}

// A fresh directory under the system's temp directory, removed with everything in it on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& Path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace pwrcell::conformance
