// Log lines that a value from outside cannot forge.
//
// Values that reach log lines come from the network (a remoteId from Concerto, a system id in a
// telemetry record, an error body of CES, a header): a newline in one would start a line of its
// own that reads like the adapter's ("...\n2026-11-26T12:00:00.000Z error serve: ..."), and an
// escape sequence would rewrite an operator's terminal. Rather than escaping at every call site
// (and missing one), the programs' loggers format through EscapingFormatter: the message text of
// every log line has its control characters escaped before the line's pattern is applied, so a
// log call is always exactly one line.
#pragma once

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>

#include <memory>
#include <string>
#include <string_view>

namespace pwrcell {

// `text` with every control character escaped: \n, \r and \t as those two characters, any other
// byte below 0x20 and DEL as \xNN, and the C1 controls U+0080..U+009F (UTF-8 C2 80..C2 9F, which
// some terminals obey like ESC) as \u00NN. Everything else, other UTF-8 included, is unchanged.
std::string EscapeControlCharacters(std::string_view text);

// A formatter that escapes each message's text (EscapeControlCharacters) and then lays the line
// out with `inner`. Thread-safe as spdlog formatters are (one per sink, used under its lock).
class EscapingFormatter final : public spdlog::formatter {
 public:
  explicit EscapingFormatter(std::unique_ptr<spdlog::formatter> inner);
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  std::unique_ptr<spdlog::formatter> inner_;
};

// EscapingFormatter over spdlog's pattern_formatter(pattern, time_type).
std::unique_ptr<spdlog::formatter> MakeEscapingFormatter(
    std::string pattern, spdlog::pattern_time_type time_type = spdlog::pattern_time_type::local);

}  // namespace pwrcell
