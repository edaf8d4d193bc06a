#include "domain/record_decoding.h"

#include <google/protobuf/descriptor.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace pwrcell::domain {
namespace {

namespace pb = google::protobuf;

constexpr std::string_view kMalformed = "not a valid EnergyRecordSet (truncated or malformed)";

// The contract nests 3 deep; the bound only matters if a recursive message is ever added
// (protobuf's own limit is 100).
constexpr int kMaxNesting = 64;

// 9999-12-31T23:59:59Z.
constexpr double kLastUsableSecond = 253402300799.0;

// Well-formed UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates, nothing above
// U+10FFFF): the same set protobuf's own check accepts, so that every string protobuf would
// reject is caught here first.
bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  const auto continuation = [&](const unsigned char* at, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return at < end && *at >= lo && *at <= hi;
  };
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      p += 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      if (!continuation(p + 1)) return false;
      p += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
      const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
      if (!continuation(p + 1, lo, hi) || !continuation(p + 2)) return false;
      p += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
      const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
      if (!continuation(p + 1, lo, hi) || !continuation(p + 2) || !continuation(p + 3)) return false;
      p += 4;
    } else {
      return false;
    }
  }
  return true;
}

// Why this pre-scan exists: protobuf reports an invalid UTF-8 string in a proto3 `string` field by writing an ERROR
// line to stderr before it fails the parse. A poison record, or a stream full of them, would then spam the log with
// text we neither control nor can rate-limit. Installing a quiet global log handler would also silence unrelated
// protobuf diagnostics process-wide and is not thread-safe, so instead the wire bytes are first walked here (a
// walk that never checks UTF-8 on its own and never logs) and every string field the schema declares is checked;
// only bytes that pass reach the real parser. The walk is driven by the descriptor, so a string field added to the
// contract is covered. It reads the wire format in place, without allocating (it runs for every record: an
// UnknownFieldSet parse, used before, cost more than the real parse).

// Reads a base-128 varint (at most 10 bytes). False when truncated or too long.
bool ReadVarint(const char*& p, const char* end, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (p == end) return false;
    const auto byte = static_cast<unsigned char>(*p++);
    value |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Walks the fields in [p, end) of a message of `type` (nullptr: contents of a group, which
// proto3 keeps as unknown fields and never checks), up to the end-group tag of `group` when it is
// non-zero. Returns as FindInvalidUtf8Field below.
std::optional<std::string> WalkFields(const char*& p, const char* end, const pb::Descriptor* type, int depth,
                                      std::uint64_t group) {
  if (depth > kMaxNesting) return std::nullopt;
  while (p != end) {
    std::uint64_t tag = 0;
    if (!ReadVarint(p, end, tag)) return std::nullopt;
    const std::uint64_t number = tag >> 3;
    if (number == 0 || number > 536870911) return std::nullopt;  // field numbers are 1 .. 2^29 - 1
    switch (tag & 7) {
      case 0: {  // varint
        std::uint64_t ignored = 0;
        if (!ReadVarint(p, end, ignored)) return std::nullopt;
        break;
      }
      case 1:  // 64-bit
        if (end - p < 8) return std::nullopt;
        p += 8;
        break;
      case 5:  // 32-bit
        if (end - p < 4) return std::nullopt;
        p += 4;
        break;
      case 2: {  // length-delimited
        std::uint64_t length = 0;
        if (!ReadVarint(p, end, length)) return std::nullopt;
        if (length > static_cast<std::uint64_t>(end - p)) return std::nullopt;
        const std::string_view field(p, static_cast<std::size_t>(length));
        p += length;
        // A declared field arriving with another wire type is kept by protobuf as an unknown
        // field and never UTF-8 checked, so only length-delimited occurrences matter.
        const pb::FieldDescriptor* declared =
            type == nullptr ? nullptr : type->FindFieldByNumber(static_cast<int>(number));
        if (declared == nullptr) break;
        if (declared->type() == pb::FieldDescriptor::TYPE_STRING) {
          if (!IsValidUtf8(field)) return declared->full_name();
        } else if (declared->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
          const char* q = field.data();
          auto nested = WalkFields(q, field.data() + field.size(), declared->message_type(), depth + 1, 0);
          if (!nested || !nested->empty()) return nested;
        }
        break;
      }
      case 3: {  // start group: its fields, up to its end-group tag
        auto nested = WalkFields(p, end, nullptr, depth + 1, number);
        if (!nested || !nested->empty()) return nested;
        break;
      }
      case 4:  // end group: must close the group being read
        if (number != group) return std::nullopt;
        return std::string();
      default:
        return std::nullopt;
    }
  }
  if (group != 0) return std::nullopt;  // a group left open
  return std::string();
}

// Returns the full name of the first field whose bytes are not UTF-8, "" when all are, or
// nullopt when the bytes are not even structurally valid wire format.
std::optional<std::string> FindInvalidUtf8Field(std::string_view bytes, const pb::Descriptor& type, int depth) {
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return std::nullopt;
  const char* p = bytes.data();
  return WalkFields(p, bytes.data() + bytes.size(), &type, depth, 0);
}

std::string FormatSeconds(double seconds) {
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof buf, seconds);
  return std::string(buf, result.ptr);
}

}  // namespace

bool IsUsableRecordTimestamp(double seconds) {
  return std::isfinite(seconds) && seconds > 0 && seconds <= kLastUsableSecond;
}

Result<pwrcell::ces::v1::EnergyRecordSet> DecodeRecordSet(std::string_view bytes) {
  using pwrcell::ces::v1::EnergyRecordSet;
  if (bytes.empty()) return InvalidArgumentError("empty record");
  const auto invalid_utf8 = FindInvalidUtf8Field(bytes, *EnergyRecordSet::descriptor(), 0);
  if (!invalid_utf8) return InvalidArgumentError(std::string(kMalformed));
  if (!invalid_utf8->empty()) {
    return InvalidArgumentError("not a valid EnergyRecordSet: " + *invalid_utf8 + " is not valid UTF-8");
  }

  EnergyRecordSet set;
  if (!set.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return InvalidArgumentError(std::string(kMalformed));
  }
  if (set.inverterid().empty()) return InvalidArgumentError("inverterId is empty");
  if (set.energyrecord().empty()) return InvalidArgumentError("no energyRecord");
  for (int i = 0; i < set.energyrecord_size(); ++i) {
    const double seconds = set.energyrecord(i).currenttimestamp();
    if (!IsUsableRecordTimestamp(seconds)) {
      return InvalidArgumentError("energyRecord[" + std::to_string(i) + "].currentTimestamp is not a usable time (" +
                                  FormatSeconds(seconds) + ")");
    }
  }
  return set;
}

}  // namespace pwrcell::domain
