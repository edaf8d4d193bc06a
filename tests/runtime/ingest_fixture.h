// The fixture shared by the ingest server's tests (ingest_server_test.cc, firehose_ingest_test.cc):
// an IngestServer on 127.0.0.1 with port 0 whose records go to a RecordingSink, a secret store for
// its access keys, and a client to it.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "adapters/memory/memory_secret_store.h"
#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"
#include "runtime/http/ingest_server.h"

namespace pwrcell::runtime::http::testing {

// Records what the server stored; answers with `answer` (OK unless a test says otherwise).
// Thread-safe: the server's handler threads call it while the test reads it.
class RecordingSink {
 public:
  Status operator()(const std::vector<std::string>& records) {
    std::lock_guard lock(mutex_);
    ++calls_;
    if (!answer_.ok()) return answer_;
    stored_.insert(stored_.end(), records.begin(), records.end());
    return Status::Ok();
  }
  void Answer(Status status) {
    std::lock_guard lock(mutex_);
    answer_ = std::move(status);
  }
  std::vector<std::string> stored() const {
    std::lock_guard lock(mutex_);
    return stored_;
  }
  int calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  Status answer_;
  std::vector<std::string> stored_;
  int calls_ = 0;
};

class IngestServerFixture : public ::testing::Test {
 protected:
  // Starts an IngestServer with `config` (its listen address should be 127.0.0.1 with port 0)
  // storing into sink_, and points client_ at it (10 s read timeout). `secrets` is the server's
  // secret store: null, or secrets_ when the configuration names an access key secret.
  void StartIngestServer(const config::TelemetryConfig& config, ports::SecretStore* secrets = nullptr) {
    server_ = std::make_unique<IngestServer>(
        config, [this](const std::vector<std::string>& records) { return sink_(records); }, metrics_, secrets);
    const Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(10, 0);
  }

  double Records(const std::string& outcome) const {
    return metrics_.Value("pwrcell_records_total", {{"outcome", outcome}});
  }

  // Declared before server_, which must not outlive them.
  adapters::MemorySecretStore secrets_;
  Metrics metrics_;
  RecordingSink sink_;
  std::unique_ptr<IngestServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace pwrcell::runtime::http::testing
