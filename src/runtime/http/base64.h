// Strict standard base64 (RFC 4648 section 4: alphabet A-Z a-z 0-9 + /, '=' padding to a multiple
// of four characters), as in the `data` field of a Kinesis-style telemetry put.
// Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace pwrcell::runtime::http {

// The decoded bytes. Errors (kInvalidArgument): a length that is not a multiple of 4, a character
// outside the alphabet (named with its offset; whitespace and the URL-safe '-' '_' included), or
// misplaced padding. Unused low bits of the last character are ignored, as most encoders' readers
// do.
Result<std::string> DecodeBase64(std::string_view text);

}  // namespace pwrcell::runtime::http
