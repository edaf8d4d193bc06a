// What the secret store conformance suite does not reach on Secrets Manager: binary-only secrets,
// AWS's size limit (moto accepts more), Put to a secret nobody created, and Check at start.
#include "adapters/aws/secrets_manager_secret_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "moto.h"

namespace pwrcell::adapters::aws {
namespace {

using aws_test::MotoOptions;
using aws_test::UniqueName;

class SecretsManagerSecretStoreTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const std::string& id : created_) {
      (void)client_->Call(kSecretsManager, "DeleteSecret", {{"SecretId", id}, {"ForceDeleteWithoutRecovery", true}});
    }
  }

  std::string Create(nlohmann::json request) {
    const std::string id = UniqueName("secret") + "_s";  // not "-xxxxxx": that reads as an ARN suffix
    request["Name"] = id;
    request["ClientRequestToken"] = aws_test::InitialVersionToken(id);
    auto created = client_->Call(kSecretsManager, "CreateSecret", request);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    created_.push_back(id);
    return id;
  }

  std::shared_ptr<AwsClient> client_ = std::make_shared<AwsClient>(MotoOptions());
  SecretsManagerSecretStore store_{client_};
  std::vector<std::string> created_;
};

TEST_F(SecretsManagerSecretStoreTest, ABinaryOnlySecretIsNotFoundNamingIt) {
  const std::string id = Create({{"SecretBinary", "AAECAw=="}});
  auto value = store_.Get(id);
  ASSERT_FALSE(value.ok());
  EXPECT_EQ(value.status().code(), StatusCode::kNotFound) << value.status().ToString();
  EXPECT_NE(value.status().message().find("'" + id + "'"), std::string::npos) << value.status().ToString();
  EXPECT_NE(value.status().message().find("SecretString"), std::string::npos) << value.status().ToString();
}

TEST_F(SecretsManagerSecretStoreTest, CheckReportsAMissingSecretWithItsIdAndTheAwsError) {
  const std::string id = UniqueName("missing") + "_s";
  const Status checked = store_.Check(id);
  EXPECT_EQ(checked.code(), StatusCode::kNotFound) << checked.ToString();
  EXPECT_NE(checked.message().find("'" + id + "'"), std::string::npos) << checked.ToString();
  EXPECT_NE(checked.message().find("ResourceNotFoundException"), std::string::npos) << checked.ToString();
  EXPECT_TRUE(store_.Check(Create({{"SecretString", "{}"}})).ok());
}

TEST_F(SecretsManagerSecretStoreTest, PutToASecretNobodyCreatedIsNotFoundAndCreatesNothing) {
  const std::string id = UniqueName("uncreated") + "_s";
  const Status put = store_.Put(id, R"({"token": "t0k3n-value"})");
  EXPECT_EQ(put.code(), StatusCode::kNotFound) << put.ToString();
  EXPECT_EQ(put.message().find("t0k3n-value"), std::string::npos) << put.ToString();
  EXPECT_EQ(store_.Get(id).status().code(), StatusCode::kNotFound);
}

TEST_F(SecretsManagerSecretStoreTest, AValueOverAwsLimitIsRefusedBeforeAnyCall) {
  // moto stores 70,000 bytes; AWS refuses a SecretString over 65,536.
  const std::string id = Create({{"SecretString", R"({"a": 1})"}});
  const std::string largest = "\"" + std::string(kMaxSecretStringBytes - 2, 'x') + "\"";
  ASSERT_EQ(largest.size(), kMaxSecretStringBytes);
  const Status fits = store_.Put(id, largest);
  EXPECT_TRUE(fits.ok()) << fits.ToString();
  const Status over = store_.Put(id, largest + " ");
  EXPECT_EQ(over.code(), StatusCode::kInvalidArgument) << over.ToString();
  EXPECT_EQ(over.message().find("xxxxxxxx"), std::string::npos);
  auto value = store_.Get(id);
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(*value, largest);
}

}  // namespace
}  // namespace pwrcell::adapters::aws
