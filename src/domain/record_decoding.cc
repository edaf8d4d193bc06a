#include "domain/record_decoding.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>

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
// protobuf diagnostics process-wide and is not thread-safe, so instead the wire bytes are first read as an
// UnknownFieldSet (which never checks UTF-8 and never logs) and every string field the schema declares is checked here;
// only bytes that pass reach the real parser. The walk is driven by the descriptor, so a string field added to the
// contract is covered.
//
// Returns the full name of the first field whose bytes are not UTF-8, "" when all are, or
// nullopt when the bytes are not even structurally valid wire format.
std::optional<std::string> FindInvalidUtf8Field(std::string_view bytes, const pb::Descriptor& type, int depth) {
  if (depth > kMaxNesting) return std::nullopt;
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return std::nullopt;
  pb::UnknownFieldSet fields;
  if (!fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  for (int i = 0; i < fields.field_count(); ++i) {
    const pb::UnknownField& field = fields.field(i);
    // A declared field arriving with another wire type is kept by protobuf as an unknown field
    // and never UTF-8 checked, so only length-delimited occurrences matter.
    if (field.type() != pb::UnknownField::TYPE_LENGTH_DELIMITED) continue;
    const pb::FieldDescriptor* declared = type.FindFieldByNumber(field.number());
    if (declared == nullptr) continue;
    if (declared->type() == pb::FieldDescriptor::TYPE_STRING) {
      if (!IsValidUtf8(field.length_delimited())) return declared->full_name();
    } else if (declared->type() == pb::FieldDescriptor::TYPE_MESSAGE) {
      auto nested = FindInvalidUtf8Field(field.length_delimited(), *declared->message_type(), depth + 1);
      if (!nested || !nested->empty()) return nested;
    }
  }
  return std::string();
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
