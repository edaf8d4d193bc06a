// Stable hashing and a tiny deterministic generator for the fleet model.
//
// Everything the fleet model invents (composition, RCP numbers, clouds, load noise) is derived
// from these, never from std::hash or <random>: both vary across standard libraries, and the
// fleet simulator, the CES simulator and the adapter must agree on every system on every
// machine and every run.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pwrcell::fleet {

// FNV-1a, 64 bit, over the bytes of `bytes`.
std::uint64_t Fnv1a64(std::string_view bytes);

// SplitMix64's finalizer: spreads every input bit over the output. FNV-1a alone leaves the high
// bits poorly mixed for short keys that differ only at the end ("id/1", "id/2").
std::uint64_t Mix64(std::uint64_t x);

// Combines a base hash with a tag and a number into a new, well-mixed hash; used to draw
// per-slot noise ("cloud at slot 1234") without keeping any state.
std::uint64_t HashCombine(std::uint64_t base, std::uint64_t tag, std::uint64_t number);

// Maps a hash to [0, 1) with 53 bits of precision.
double UnitInterval(std::uint64_t hash);

// SplitMix64 sequence: the same numbers on every platform for the same seed.
class HashStream {
 public:
  explicit HashStream(std::uint64_t seed) : state_(seed) {}

  std::uint64_t Next();
  double Uniform() { return UnitInterval(Next()); }  // [0, 1)
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  int UniformInt(int lo, int hi);  // inclusive; requires lo <= hi
  bool Chance(double probability) { return Uniform() < probability; }

 private:
  std::uint64_t state_;
};

// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (lower-case, RFC 4122 version 4 layout) from 128 bits.
std::string UuidFromBits(std::uint64_t high, std::uint64_t low);

}  // namespace pwrcell::fleet
