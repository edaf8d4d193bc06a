#include "runtime/http/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <limits>

namespace pwrcell::runtime::http {
namespace {

// zlib's windowBits for "gzip wrapper only" (15 = the largest window, + 16 = gzip).
constexpr int kGzipWindowBits = 15 + 16;

// Output is produced into this buffer and appended, so the string grows only as far as the data.
constexpr std::size_t kChunk = 64 * 1024;

// Owns one inflate stream.
class Inflater {
 public:
  Inflater() { ok_ = inflateInit2(&stream_, kGzipWindowBits) == Z_OK; }
  ~Inflater() {
    if (ok_) inflateEnd(&stream_);
  }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  bool ok() const { return ok_; }
  z_stream& stream() { return stream_; }

 private:
  z_stream stream_{};
  bool ok_ = false;
};

std::string Describe(const z_stream& stream, int code) {
  if (stream.msg != nullptr) return stream.msg;
  return zError(code);
}

}  // namespace

Result<std::string> GunzipBounded(std::string_view compressed, std::size_t max_bytes) {
  Inflater inflater;
  if (!inflater.ok()) return InternalError("zlib: cannot initialize inflate");
  z_stream& stream = inflater.stream();
  // zlib counts input in uInt; request bodies are far below 4 GiB (max_body_bytes is an int).
  if (compressed.size() > std::numeric_limits<uInt>::max()) {
    return ResourceExhaustedError("compressed body too large");
  }
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());

  std::string out;
  std::array<char, kChunk> buffer;
  for (;;) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer.data());
    stream.avail_out = static_cast<uInt>(buffer.size());
    const int code = inflate(&stream, Z_NO_FLUSH);
    const std::size_t produced = buffer.size() - stream.avail_out;
    if (produced > max_bytes - out.size()) {
      return ResourceExhaustedError("decompressed body larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buffer.data(), produced);
    if (code == Z_STREAM_END) {
      if (stream.avail_in == 0) return out;
      // Another gzip member follows (RFC 1952 section 2.2).
      if (inflateReset(&stream) != Z_OK) return InternalError("zlib: cannot reset inflate");
      continue;
    }
    if (code == Z_OK) continue;
    if (code == Z_BUF_ERROR) {
      // No progress possible: the output buffer was not the reason (it had room), so the input
      // ended before the stream did.
      if (produced == 0) return InvalidArgumentError("gzip body is truncated");
      continue;
    }
    return InvalidArgumentError("gzip body is invalid: " + Describe(stream, code));
  }
}

}  // namespace pwrcell::runtime::http
