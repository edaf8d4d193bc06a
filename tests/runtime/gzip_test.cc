#include "runtime/http/gzip.h"

#include <gtest/gtest.h>

#include <string>

#include "gzip_bytes.h"

namespace pwrcell::runtime::http {
namespace {

using testing::Gzip;

TEST(GunzipBoundedTest, RoundTripsWhatZlibCompressed) {
  std::string text;
  for (int i = 0; i < 10000; ++i) text += "record " + std::to_string(i) + "\n";
  Result<std::string> out = GunzipBounded(Gzip(text), text.size());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, text);
}

TEST(GunzipBoundedTest, ConcatenatedMembersAreOneBody) {
  Result<std::string> out = GunzipBounded(Gzip("first,") + Gzip("second"), 100);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, "first,second");
}

TEST(GunzipBoundedTest, OutputOverTheCapIsResourceExhaustedWithoutInflatingItAll) {
  // 16 MiB of zeros compress to ~16 KiB: a small "zip bomb".
  const std::string bomb = Gzip(std::string(16 * 1024 * 1024, '\0'), 9);
  ASSERT_LT(bomb.size(), 32u * 1024);
  Result<std::string> out = GunzipBounded(bomb, 1024 * 1024);
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(out.status().message(), "decompressed body larger than 1048576 bytes");

  // Exactly at the cap is fine.
  Result<std::string> exact = GunzipBounded(Gzip(std::string(1000, 'a')), 1000);
  ASSERT_TRUE(exact.ok()) << exact.status().ToString();
  EXPECT_EQ(exact->size(), 1000u);
  EXPECT_EQ(GunzipBounded(Gzip(std::string(1001, 'a')), 1000).status().code(), StatusCode::kResourceExhausted);
}

TEST(GunzipBoundedTest, NotGzipCorruptOrTruncatedIsInvalidArgument) {
  const std::string good = Gzip("hello, world, hello, world");
  EXPECT_EQ(GunzipBounded("plain text, not gzip", 1000).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(GunzipBounded("", 1000).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(GunzipBounded(good.substr(0, good.size() - 5), 1000).status().code(), StatusCode::kInvalidArgument);
  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 6] ^= 0x55;  // inside the CRC-32 of the trailer
  EXPECT_EQ(GunzipBounded(bad_crc, 1000).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(GunzipBounded(good + "trailing", 1000).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pwrcell::runtime::http
