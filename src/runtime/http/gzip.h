// Request bodies sent with `Content-Encoding: gzip` (RFC 1952, as Amazon Data Firehose and most
// HTTP clients compress them), decompressed with zlib under a cap on the decompressed size, so
// that a small body that inflates to gigabytes (a "zip bomb") costs at most the cap in memory.
// Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pwrcell::runtime::http {

// The decompressed bytes of `compressed` (one gzip member, or several concatenated, as RFC 1952
// allows). Errors: kResourceExhausted "decompressed body larger than <max_bytes> bytes" as soon
// as the output would exceed `max_bytes` (decompression stops there); kInvalidArgument when the
// input is not gzip, is corrupt (bad header, data or CRC), is cut short, or has bytes after the
// last member.
Result<std::string> GunzipBounded(std::string_view compressed, std::size_t max_bytes);

}  // namespace pwrcell::runtime::http
