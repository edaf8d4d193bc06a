#include "fleet/hash.h"

#include <cassert>
#include <cstdio>

namespace pwrcell::fleet {

std::uint64_t Fnv1a64(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::uint64_t Mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t HashCombine(std::uint64_t base, std::uint64_t tag, std::uint64_t number) {
  return Mix64(base ^ Mix64(tag * 0x9e3779b97f4a7c15ULL + Mix64(number)));
}

double UnitInterval(std::uint64_t hash) {
  return static_cast<double>(hash >> 11) * 0x1.0p-53;
}

std::uint64_t HashStream::Next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return Mix64(state_);
}

int HashStream::UniformInt(int lo, int hi) {
  assert(lo <= hi);
  const auto span = static_cast<std::uint64_t>(static_cast<std::int64_t>(hi) - lo + 1);
  // The modulo bias is below 2^-50 for the small spans used here.
  return static_cast<int>(lo + static_cast<std::int64_t>(Next() % span));
}

std::string UuidFromBits(std::uint64_t high, std::uint64_t low) {
  high = (high & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  low = (low & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;    // RFC 4122 variant
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(high >> 32),
                static_cast<unsigned>((high >> 16) & 0xFFFF), static_cast<unsigned>(high & 0xFFFF),
                static_cast<unsigned>(low >> 48), static_cast<unsigned long long>(low & 0xFFFFFFFFFFFFULL));
  return buf;
}

}  // namespace pwrcell::fleet
