#include "common/url.h"

#include <gtest/gtest.h>

namespace pwrcell {
namespace {

TEST(RedactUrlCredentials, MasksThePasswordKeepsTheUser) {
  EXPECT_EQ(RedactUrlCredentials("http://user:s3cret@host:8080/graphql"), "http://user:***@host:8080/graphql");
  EXPECT_EQ(RedactUrlCredentials("https://u:p%40ss@w@h"), "https://u:***@h");
}

TEST(RedactUrlCredentials, MasksAUserinfoWithoutPassword) {
  EXPECT_EQ(RedactUrlCredentials("https://tok3n@host/path?x=a@b"), "https://***@host/path?x=a@b");
}

TEST(RedactUrlCredentials, LeavesUrlsWithoutUserinfoAlone) {
  EXPECT_EQ(RedactUrlCredentials("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
  EXPECT_EQ(RedactUrlCredentials("no url at all: a@b"), "no url at all: a@b");
  EXPECT_EQ(RedactUrlCredentials(""), "");
}

TEST(RedactUrlCredentials, MasksEveryUrlInAMessage) {
  EXPECT_EQ(RedactUrlCredentials("POST http://a:pw1@h1/graphql: failed; CES \"https://b:pw2@h2\""),
            "POST http://a:***@h1/graphql: failed; CES \"https://b:***@h2\"");
}

}  // namespace
}  // namespace pwrcell
