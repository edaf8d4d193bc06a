// Exit codes of the pwrcell-adapter command line (documented in README.md and --help).
#pragma once

namespace pwrcell::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;        // the command ran and failed (store unreachable, I/O error)
inline constexpr int kExitUsage = 2;          // bad command line
inline constexpr int kExitBadConfig = 3;      // the configuration file is invalid
inline constexpr int kExitNotFound = 4;       // the thing asked for does not exist (device, file)
inline constexpr int kExitInvalidInput = 5;   // an input file is not what it should be (record, device JSON)

}  // namespace pwrcell::cli
