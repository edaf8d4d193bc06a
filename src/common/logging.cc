#include "common/logging.h"

#include <utility>

namespace pwrcell {
namespace {

bool IsControl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

// Whether text[i] starts a UTF-8 C1 control (C2 80..C2 9F).
bool IsC1At(std::string_view text, std::size_t i) {
  return static_cast<unsigned char>(text[i]) == 0xC2 && i + 1 < text.size() &&
         static_cast<unsigned char>(text[i + 1]) >= 0x80 && static_cast<unsigned char>(text[i + 1]) <= 0x9F;
}

bool NeedsEscaping(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (IsControl(static_cast<unsigned char>(text[i])) || IsC1At(text, i)) return true;
  }
  return false;
}

}  // namespace

std::string EscapeControlCharacters(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 8);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (IsControl(c)) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0x0f];
    } else if (IsC1At(text, i)) {
      const auto code = static_cast<unsigned char>(text[i + 1]);
      out += "\\u00";
      out += kHex[code >> 4];
      out += kHex[code & 0x0f];
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

EscapingFormatter::EscapingFormatter(std::unique_ptr<spdlog::formatter> inner) : inner_(std::move(inner)) {}

void EscapingFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  const std::string_view payload(msg.payload.data(), msg.payload.size());
  if (!NeedsEscaping(payload)) {
    inner_->format(msg, dest);
    return;
  }
  const std::string escaped = EscapeControlCharacters(payload);
  spdlog::details::log_msg copy = msg;
  copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
  inner_->format(copy, dest);
}

std::unique_ptr<spdlog::formatter> EscapingFormatter::clone() const {
  return std::make_unique<EscapingFormatter>(inner_->clone());
}

std::unique_ptr<spdlog::formatter> MakeEscapingFormatter(std::string pattern, spdlog::pattern_time_type time_type) {
  return std::make_unique<EscapingFormatter>(
      std::make_unique<spdlog::pattern_formatter>(std::move(pattern), time_type));
}

}  // namespace pwrcell
