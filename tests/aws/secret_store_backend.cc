// The secret store conformance suite's backend on moto: the test's secrets created with
// CreateSecret (as an operator or the deployment template would), read and written by a
// SecretsManagerSecretStore; a second store with its own AwsClient is another instance's view.
// The secrets are deleted (without a recovery window) after the test.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "adapters/aws/aws_client.h"
#include "adapters/aws/secrets_manager_secret_store.h"
#include "backends.h"
#include "moto.h"

namespace pwrcell::conformance {
namespace {

using adapters::aws::AwsClient;
using adapters::aws::kSecretsManager;
using adapters::aws::SecretsManagerSecretStore;

class AwsBackend final : public Backend {
 public:
  ~AwsBackend() override {
    for (const std::string& id : created_) {
      (void)client_->Call(kSecretsManager, "DeleteSecret", {{"SecretId", id}, {"ForceDeleteWithoutRecovery", true}});
    }
  }

  std::shared_ptr<ports::DeviceStore> MakeStore() override {
    ADD_FAILURE() << "the secret store backend has no device store";
    return nullptr;
  }
  std::shared_ptr<ports::Queue> MakeQueue(int, const std::string&) override {
    ADD_FAILURE() << "the secret store backend has no queue";
    return nullptr;
  }
  std::shared_ptr<ports::Coordination> MakeCoordination() override {
    ADD_FAILURE() << "the secret store backend has no coordination state";
    return nullptr;
  }
  std::shared_ptr<ports::Coordination> MakeSecondCoordination() override { return nullptr; }
  void AdvanceTime(Duration) override {}

  std::shared_ptr<ports::SecretStore> MakeSecretStore(const std::map<std::string, std::string>& initial) override {
    for (const auto& [id, value] : initial) {
      auto created = client_->Call(kSecretsManager, "CreateSecret",
                                   {{"Name", id}, {"SecretString", value}, {"ClientRequestToken", aws_test::InitialVersionToken(id)}});
      if (!created.ok()) {
        ADD_FAILURE() << "creating secret " << id << ": " << created.status().ToString();
        return nullptr;
      }
      created_.push_back(id);
    }
    return std::make_shared<SecretsManagerSecretStore>(client_);
  }
  std::shared_ptr<ports::SecretStore> MakeSecondSecretStore() override {
    return std::make_shared<SecretsManagerSecretStore>(std::make_shared<AwsClient>(aws_test::MotoOptions()));
  }

 private:
  std::shared_ptr<AwsClient> client_ = std::make_shared<AwsClient>(aws_test::MotoOptions());
  std::vector<std::string> created_;
};

}  // namespace

std::vector<BackendFactory> AllBackends() {
  return {{"Aws", [] { return std::make_unique<AwsBackend>(); }}};
}

}  // namespace pwrcell::conformance
