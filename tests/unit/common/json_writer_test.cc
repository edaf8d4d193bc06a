// json_writer (src/common/json_writer.h): what it writes parses back, as nlohmann reads it, to
// the value written.
#include "common/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

namespace pwrcell::json_writer {
namespace {

std::string String(std::string_view text) {
  std::string out;
  AppendString(out, text);
  return out;
}

std::string Number(double value) {
  std::string out;
  AppendNumber(out, value);
  return out;
}

TEST(JsonWriter, StringsAreQuotedAndEscapedAndParseBackToThemselves) {
  EXPECT_EQ(String("asset-1"), R"("asset-1")");
  EXPECT_EQ(String(""), R"("")");
  EXPECT_EQ(String("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(String("line\nnext\ttab\r\b\f"), R"("line\nnext\ttab\r\b\f")");
  EXPECT_EQ(String(std::string("nul\0x\x1f", 6)), R"("nul\u0000x\u001f")");
  for (const std::string text : {"plain", "quote \" inside", "\x01\x02\x7f", "Zürich ☀", "\\\\"}) {
    EXPECT_EQ(nlohmann::json::parse(String(text)).get<std::string>(), text) << text;
  }
}

TEST(JsonWriter, NumbersAreTheShortestSpellingThatReadsBackExactly) {
  EXPECT_EQ(Number(1.5), "1.5");
  EXPECT_EQ(Number(240), "240");
  EXPECT_EQ(Number(-0.25), "-0.25");
  for (double value : {0.1, 57.3, 509.94444444444446, -1e-300, 1e300, 123456789012345.0, 2080.0}) {
    EXPECT_EQ(nlohmann::json::parse(Number(value)).get<double>(), value) << Number(value);
  }
}

TEST(JsonWriter, ANumberWithoutAJsonSpellingIsNull) {
  EXPECT_EQ(Number(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(Number(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(Number(-std::numeric_limits<double>::infinity()), "null");
}

TEST(JsonWriter, Integers) {
  std::string out;
  AppendInteger(out, 1'763'800'000'123);
  out.push_back(' ');
  AppendInteger(out, -42);
  out.push_back(' ');
  AppendInteger(out, 0);
  EXPECT_EQ(out, "1763800000123 -42 0");
}

}  // namespace
}  // namespace pwrcell::json_writer
