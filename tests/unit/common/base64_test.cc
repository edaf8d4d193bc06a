#include "common/base64.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

namespace pwrcell {
namespace {

// RFC 4648 section 10: "", then tails of 1, 2 and 3 bytes after zero and one whole group.
constexpr std::pair<const char*, const char*> kRfc4648Vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(Base64Test, EncodesRfc4648Vectors) {
  for (const auto& [decoded, encoded] : kRfc4648Vectors) EXPECT_EQ(Base64Encode(decoded), encoded) << decoded;
}

TEST(Base64Test, DecodesRfc4648Vectors) {
  for (const auto& [decoded, encoded] : kRfc4648Vectors) {
    Result<std::string> result = Base64Decode(encoded);
    ASSERT_TRUE(result.ok()) << encoded << ": " << result.status().ToString();
    EXPECT_EQ(*result, decoded) << encoded;
  }
}

TEST(Base64Test, EncodesTheLastCharactersOfTheAlphabetAndHighBytes) {
  EXPECT_EQ(Base64Encode(std::string("\xfb\xff\xbf", 3)), "+/+/");
  EXPECT_EQ(Base64Encode(std::string("\xff", 1)), "/w==");
  EXPECT_EQ(Base64Encode(std::string("\xff\xff", 2)), "//8=");
  EXPECT_EQ(Base64Encode(std::string("\0\0\0", 3)), "AAAA");
  EXPECT_EQ(Base64Encode(std::string("\0", 1)), "AA==");
}

TEST(Base64Test, RoundTripsEveryLengthAndByteValue) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(255 - i));
  for (std::size_t length = 0; length <= bytes.size(); ++length) {
    const std::string prefix = bytes.substr(0, length);
    const std::string text = Base64Encode(prefix);
    EXPECT_EQ(text.size(), (length + 2) / 3 * 4);
    Result<std::string> result = Base64Decode(text);
    ASSERT_TRUE(result.ok()) << text << ": " << result.status().ToString();
    EXPECT_EQ(*result, prefix);
  }
}

TEST(Base64Test, IgnoresTheUnusedLowBitsOfTheLastCharacter) {
  // "Zg==" is the canonical "f"; "Zh==" differs only in bits that no byte uses.
  EXPECT_EQ(Base64Decode("Zh==").value(), "f");
  EXPECT_EQ(Base64Decode("Zm9=").value(), "fo");
}

TEST(Base64Test, RejectsMalformedText) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      // Length: missing padding is not accepted.
      {"Zm9", "length 3 is not a multiple of 4"},
      {"Zg", "length 2 is not a multiple of 4"},
      {"Z", "length 1 is not a multiple of 4"},
      {"Zm9vY", "length 5 is not a multiple of 4"},
      // Characters outside the standard alphabet.
      {"Zm9v!A==", "'!' at offset 4"},
      {"Zm 9", "byte 0x20 at offset 2"},
      {"Zm9v\nYmFy", "length 9 is not a multiple of 4"},
      {"Zm9\nYmFy", "byte 0x0a at offset 3"},
      {"Zm9\r", "byte 0x0d at offset 3"},
      {"Zm9-", "'-' at offset 3"},  // the URL-safe alphabet is not the standard one
      {"Zm9_", "'_' at offset 3"},
      {"Zm9\xc3", "byte 0xc3 at offset 3"},
      // Padding anywhere but the last one or two characters.
      {"Z=9v", "padding '=' at offset 1"},
      {"Zg=A", "padding '=' at offset 2"},
      {"Z===", "padding '=' at offset 1"},
      {"====", "padding '=' at offset 0"},
      {"Zg==Zm9v", "padding '=' at offset 2"},
      {"Zg==Zg==", "padding '=' at offset 2"},
  };
  for (const auto& c : cases) {
    Result<std::string> result = Base64Decode(c.text);
    ASSERT_FALSE(result.ok()) << c.text;
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(std::string("invalid base64: ") + c.error), std::string::npos)
        << c.text << " -> " << result.status().message();
  }
}

}  // namespace
}  // namespace pwrcell
