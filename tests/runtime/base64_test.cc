#include "runtime/http/base64.h"

#include <gtest/gtest.h>

#include <string>

#include "test_records.h"

namespace pwrcell::runtime::http {
namespace {

TEST(Base64Test, DecodesRfc4648Vectors) {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""},
      {"Zg==", "f"},
      {"Zm8=", "fo"},
      {"Zm9v", "foo"},
      {"Zm9vYg==", "foob"},
      {"Zm9vYmE=", "fooba"},
      {"Zm9vYmFy", "foobar"},
  };
  for (const auto& [encoded, decoded] : vectors) {
    Result<std::string> result = DecodeBase64(encoded);
    ASSERT_TRUE(result.ok()) << encoded << ": " << result.status().ToString();
    EXPECT_EQ(*result, decoded) << encoded;
  }
}

TEST(Base64Test, RoundTripsEveryByteValue) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (std::size_t length = 0; length <= bytes.size(); length += 37) {
    const std::string prefix = bytes.substr(0, length);
    Result<std::string> result = DecodeBase64(testing::Base64(prefix));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(*result, prefix);
  }
}

TEST(Base64Test, RejectsMalformedText) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"Zm9", "length 3 is not a multiple of 4"},
      {"Zm9v!A==", "'!' at offset 4"},
      {"Zm 9", "byte 0x20 at offset 2"},
      {"Zm9-", "'-' at offset 3"},  // URL-safe alphabet is not the standard one
      {"Z=9v", "padding '=' at offset 1"},
      {"Z===", "padding '=' at offset 1"},
      {"====", "padding '=' at offset 0"},
  };
  for (const auto& c : cases) {
    Result<std::string> result = DecodeBase64(c.text);
    ASSERT_FALSE(result.ok()) << c.text;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(c.error), std::string::npos)
        << c.text << " -> " << result.status().message();
  }
}

}  // namespace
}  // namespace pwrcell::runtime::http
