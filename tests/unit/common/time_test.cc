#include "common/time.h"

#include <gtest/gtest.h>

namespace pwrcell {
namespace {

TEST(Iso8601, FormatsWholeSecondsWithoutFraction) {
  EXPECT_EQ(FormatIso8601(FromUnixSeconds(1763800000)), "2025-11-22T08:26:40Z");
}

TEST(Iso8601, FormatsMilliseconds) {
  EXPECT_EQ(FormatIso8601(FromUnixSeconds(1763800000.25)), "2025-11-22T08:26:40.250Z");
}

TEST(Iso8601, ParsesWhatItFormats) {
  const auto t = ParseIso8601("2026-11-22T10:15:00Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(ToUnixMillis(*t), 1795342500000);
  EXPECT_EQ(ToUnixMillis(*ParseIso8601("2026-11-22T10:15:00.5+00:00")), 1795342500500);
}

TEST(Iso8601, RejectsMalformed) {
  EXPECT_FALSE(ParseIso8601("").has_value());
  EXPECT_FALSE(ParseIso8601("2026-13-22T10:15:00Z").has_value());
  EXPECT_FALSE(ParseIso8601("2026-11-22 10:15:00Z").has_value());
  EXPECT_FALSE(ParseIso8601("2026-11-22T10:15:00").has_value());
  EXPECT_FALSE(ParseIso8601("2026-11-22T10:15:00.Z").has_value());
}

}  // namespace
}  // namespace pwrcell
