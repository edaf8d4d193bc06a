// The code base's one base64 codec: standard base64 as RFC 4648 section 4 defines it (alphabet
// A-Z a-z 0-9 + /, '=' padding to a multiple of four characters). It is the form of the `data`
// field of a Kinesis-style telemetry put and of a Firehose delivery, of a Kinesis record's Data and
// a DynamoDB B attribute in the AWS JSON protocol, of a Lambda Kinesis event's data, and of the SQS
// adapter's binary bodies. Every one of those producers pads and writes no line breaks, so the
// decoder is strict: nothing that it accepts has two spellings.
// Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace pwrcell {

// `bytes` in standard base64, padded with '=' to a multiple of four characters; "" for "".
std::string Base64Encode(std::string_view bytes);

// The bytes that `text` encodes. Errors, all kInvalidArgument with a message that starts
// "invalid base64: ": a length that is not a multiple of 4 (so missing padding), a character
// outside the alphabet (named with its offset; whitespace, line breaks and the URL-safe '-' '_'
// included), or padding anywhere but as the last one or two characters. The unused low bits of
// the last character before the padding are ignored (not required to be zero), as most decoders
// do.
Result<std::string> Base64Decode(std::string_view text);

}  // namespace pwrcell
