// Exit codes of the pwrcell-adapter command line (documented in README.md and --help), and the
// one table that turns a Status into one. Only the CLI chooses exit codes: the runtimes return a
// Status and leave the mapping here.
#pragma once

#include <optional>

#include "common/status.h"

namespace pwrcell::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // the command ran and failed (store unreachable, I/O error)
inline constexpr int kExitUsage = 2;         // bad command line
inline constexpr int kExitBadConfig = 3;     // the configuration file is invalid
inline constexpr int kExitNotFound = 4;      // the thing asked for does not exist (device, file)
inline constexpr int kExitInvalidInput = 5;  // an input file is not what it should be (record, device JSON)

// What a command was doing when the Status came back. The same code means different things at
// different steps: a missing secrets file keeps serve from starting (1), a missing recording is
// "not found" (4).
enum class Step {
  kLoadConfig,  // reading and validating deployment.toml (config::LoadConfigFile)
  kServe,       // serve: creating, starting and stopping the app (store, secrets, listeners)
  kReplay,      // replay: reading a recording and appending it to the ingest queue
};

struct ExitCodeRule {
  Step step;
  std::optional<StatusCode> code;  // nullopt: any other error at this step
  int exit_code;
};

// First matching rule wins; an OK Status is always kExitOk.
inline constexpr ExitCodeRule kExitCodeTable[] = {
    {Step::kLoadConfig, StatusCode::kNotFound, kExitNotFound},         // no such configuration file
    {Step::kLoadConfig, std::nullopt, kExitBadConfig},                 // a key, a value, the syntax
    {Step::kServe, std::nullopt, kExitFailure},                        // port taken, secrets, store
    {Step::kReplay, StatusCode::kNotFound, kExitNotFound},             // no such recording
    {Step::kReplay, StatusCode::kInvalidArgument, kExitInvalidInput},  // truncated recording
    {Step::kReplay, std::nullopt, kExitFailure},                       // the store
};

constexpr int ExitCodeFor(Step step, StatusCode code) {
  if (code == StatusCode::kOk) return kExitOk;
  for (const ExitCodeRule& rule : kExitCodeTable) {
    if (rule.step == step && (!rule.code || *rule.code == code)) return rule.exit_code;
  }
  return kExitFailure;
}

inline int ExitCodeFor(Step step, const Status& status) {
  return ExitCodeFor(step, status.code());
}

}  // namespace pwrcell::cli
