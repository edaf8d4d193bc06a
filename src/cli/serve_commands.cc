// `serve` and `replay`: load the configuration, then hand over to the serve runtime.
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "config/config.h"
#include "runtime/serve/serve.h"

namespace pwrcell::cli {
namespace {

std::optional<config::Config> LoadOrReport(const std::string& path, int& exit_code) {
  auto cfg = config::LoadConfigFile(path, config::ProcessEnvironment());
  if (!cfg.ok()) {
    std::cerr << "error: " << cfg.status().message() << "\n";
    exit_code = cfg.status().code() == StatusCode::kNotFound ? kExitNotFound : kExitBadConfig;
    return std::nullopt;
  }
  return *cfg;
}

}  // namespace

int Serve(const std::string& config_path, const std::string& log_level) {
  auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    std::cerr << "error: --log-level " << log_level << ": expected trace, debug, info, warn, error or off\n";
    return kExitUsage;
  }
  spdlog::set_level(level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  int code = kExitOk;
  auto cfg = LoadOrReport(config_path, code);
  if (!cfg) return code;
  return runtime::serve::RunServe(*cfg);
}

int Replay(const std::string& config_path, const std::string& file) {
  int code = kExitOk;
  auto cfg = LoadOrReport(config_path, code);
  if (!cfg) return code;
  return runtime::serve::Replay(*cfg, file);
}

}  // namespace pwrcell::cli
