#include "runtime/http/access_key.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "adapters/memory/memory_secret_store.h"

namespace pwrcell::runtime::http {
namespace {

using std::chrono::steady_clock;
using namespace std::chrono_literals;

TEST(ConstantTimeEqualsTest, EqualOnlyForTheSameBytes) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("s3cret", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret", "s3creT"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret", "s3cre"));
  EXPECT_FALSE(ConstantTimeEquals("s3cre", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
  // A prefix padded with NULs is not the key either.
  EXPECT_FALSE(ConstantTimeEquals(std::string("ab\0", 3), "ab"));
}

TEST(ParseAccessKeySecretTest, TakesTheApiKeyOfAnObject) {
  EXPECT_EQ(*ParseAccessKeySecret(R"({"api_key": "k-123"})"), "k-123");
  for (const char* bad : {R"("k-123")", R"({"apiKey": "k"})", R"({"api_key": ""})", R"({"api_key": 5})", "{not json"}) {
    const Result<std::string> key = ParseAccessKeySecret(bad);
    EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  // The value never appears in the message.
  EXPECT_EQ(ParseAccessKeySecret(R"({"api_key": 12345})").status().message().find("12345"), std::string::npos);
}

class AccessKeyTest : public ::testing::Test {
 protected:
  AccessKey Make() {
    return AccessKey(secrets_, "IngestKey", AccessKey::Options{.refresh_after = 60s, .recheck_after = 5s},
                     [this] { return now_; });
  }
  adapters::MemorySecretStore secrets_{{{"IngestKey", R"({"api_key": "old-key"})"}}};
  steady_clock::time_point now_ = steady_clock::time_point(1h);
};

TEST_F(AccessKeyTest, LoadFailsForAMissingOrMalformedSecretNamingItsId) {
  AccessKey missing(secrets_, "NoSuchSecret");
  const Status not_found = missing.Load();
  EXPECT_EQ(not_found.code(), StatusCode::kNotFound);
  EXPECT_NE(not_found.message().find("NoSuchSecret"), std::string::npos);

  ASSERT_TRUE(secrets_.Put("Malformed", R"({"key": "x"})").ok());
  AccessKey malformed(secrets_, "Malformed");
  const Status invalid = malformed.Load();
  EXPECT_EQ(invalid.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(invalid.message().find("Malformed"), std::string::npos);
}

TEST_F(AccessKeyTest, ChecksThePresentedKey) {
  AccessKey key = Make();
  ASSERT_TRUE(key.Load().ok());
  EXPECT_EQ(key.Check("old-key"), AccessKey::Verdict::kAccepted);
  EXPECT_EQ(key.Check(""), AccessKey::Verdict::kMissing);
  EXPECT_EQ(key.Check("old-ke"), AccessKey::Verdict::kWrong);
  EXPECT_EQ(key.Check("old-key "), AccessKey::Verdict::kWrong);
}

TEST_F(AccessKeyTest, ARotatedKeyIsReadAgainOnAMismatchAtMostOncePerRecheckInterval) {
  AccessKey key = Make();
  ASSERT_TRUE(key.Load().ok());
  ASSERT_TRUE(secrets_.Put("IngestKey", R"({"api_key": "new-key"})").ok());
  now_ += 1s;  // within recheck_after of the last read: the new key is not known yet
  EXPECT_EQ(key.Check("new-key"), AccessKey::Verdict::kWrong);
  EXPECT_EQ(key.Check("old-key"), AccessKey::Verdict::kAccepted);
  now_ += 5s;  // a mismatch now reads the secret again
  EXPECT_EQ(key.Check("new-key"), AccessKey::Verdict::kAccepted);
  EXPECT_EQ(key.Check("old-key"), AccessKey::Verdict::kWrong);
}

TEST_F(AccessKeyTest, TheKeyIsReadAgainAfterTheRefreshIntervalAndKeptWhenTheReadFails) {
  AccessKey key = Make();
  ASSERT_TRUE(key.Load().ok());
  ASSERT_TRUE(secrets_.Put("IngestKey", R"({"api_key": "new-key"})").ok());
  now_ += 61s;
  // The matching old key is refused once the refresh read the new one.
  EXPECT_EQ(key.Check("old-key"), AccessKey::Verdict::kWrong);
  EXPECT_EQ(key.Check("new-key"), AccessKey::Verdict::kAccepted);

  // A secret that became unreadable (here malformed) leaves the key in memory in use.
  ASSERT_TRUE(secrets_.Put("IngestKey", "{broken").ok());
  now_ += 61s;
  EXPECT_EQ(key.Check("new-key"), AccessKey::Verdict::kAccepted);
}

}  // namespace
}  // namespace pwrcell::runtime::http
