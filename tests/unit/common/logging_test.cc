#include "common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

namespace pwrcell {
namespace {

TEST(EscapeControlCharacters, EscapesControlsAndKeepsTheRest) {
  EXPECT_EQ(EscapeControlCharacters("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(EscapeControlCharacters(std::string("\x1b[31m\x00\x7f", 7)), "\\x1b[31m\\x00\\x7f");
  EXPECT_EQ(EscapeControlCharacters("\xc2\x9b" "2J"), "\\u009b2J");  // C1 CSI in UTF-8
  EXPECT_EQ(EscapeControlCharacters("sys-\xc3\xa9t\xc3\xa9 \xe2\x82\xac \\n"), "sys-\xc3\xa9t\xc3\xa9 \xe2\x82\xac \\n");
  EXPECT_EQ(EscapeControlCharacters(""), "");
}

// Issue 13: a remoteId with a newline forged a log line. Through the programs' formatter, a log
// call is one line whatever its values hold.
TEST(EscapingFormatter, AForgedRemoteIdStaysOnOneEscapedLine) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger logger("escaping", sink);
  logger.set_formatter(MakeEscapingFormatter("%l %v", spdlog::pattern_time_type::utc));
  const std::string remote_id = "sys-1\n2026-11-26T12:00:00.000Z error serve: forged\r\x1b[2K";
  logger.warn("registrar: device {} offline", remote_id);
  logger.info("plain line");
  EXPECT_EQ(out.str(),
            "warning registrar: device sys-1\\n2026-11-26T12:00:00.000Z error serve: forged\\r\\x1b[2K offline\n"
            "info plain line\n");

  // A clone (what spdlog makes for every sink of set_formatter) escapes as well.
  std::ostringstream cloned_out;
  spdlog::logger cloned("cloned", std::make_shared<spdlog::sinks::ostream_sink_mt>(cloned_out));
  cloned.set_formatter(MakeEscapingFormatter("%v")->clone());
  cloned.error("{}", "a\nb");
  EXPECT_EQ(cloned_out.str(), "a\\nb\n");
}

}  // namespace
}  // namespace pwrcell
