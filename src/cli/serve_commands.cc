// `serve` and `replay`: load the configuration, hand over to the serve runtime, and map what it
// returns to an exit code (cli/exit_codes.h). `serve` is where the stop signals are handled.
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <string>
#include <variant>

#include "adapters/system/system_clock.h"
#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "common/logging.h"
#include "config/config.h"
#include "runtime/serve/serve.h"

namespace pwrcell::cli {
namespace {

// The configuration, or the exit code after the reason was written to stderr.
std::variant<config::Config, int> LoadOrReport(const std::string& path) {
  auto cfg = config::LoadConfigFile(path, config::ProcessEnvironment());
  if (!cfg.ok()) {
    std::cerr << "error: " << cfg.status().message() << "\n";
    return ExitCodeFor(Step::kLoadConfig, cfg.status());
  }
  return *cfg;
}

int CannotStart(const Status& status) {
  spdlog::critical("cannot start: {}", status.ToString());
  return ExitCodeFor(Step::kServe, status);
}

}  // namespace

int Serve(const std::string& config_path, const std::string& log_level) {
  auto level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    std::cerr << "error: --log-level " << log_level << ": expected trace, debug, info, warn, error or off\n";
    return kExitUsage;
  }
  spdlog::set_level(level);
  spdlog::set_formatter(MakeEscapingFormatter("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc));
  auto loaded = LoadOrReport(config_path);
  if (std::holds_alternative<int>(loaded)) return std::get<int>(loaded);
  const auto& cfg = std::get<config::Config>(loaded);

  // Block the stop signals in every thread (each inherits this mask, so block before the app
  // starts any); this thread alone waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  adapters::SystemClock clock;
  auto secrets = runtime::serve::OpenSecretStore(cfg);
  if (!secrets.ok()) return CannotStart(secrets.status());
  auto app = runtime::serve::ServeApp::Create(cfg, clock, **secrets);
  if (!app.ok()) return CannotStart(app.status());
  if (Status started = (*app)->Start(); !started.ok()) return CannotStart(started);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("serve: {} received; stopping", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  if (Status stopped = (*app)->Stop(); !stopped.ok()) {
    spdlog::critical("serve: stopping: {}", stopped.ToString());
    return ExitCodeFor(Step::kServe, stopped);
  }
  return kExitOk;
}

int Replay(const std::string& config_path, const std::string& file) {
  auto loaded = LoadOrReport(config_path);
  if (std::holds_alternative<int>(loaded)) return std::get<int>(loaded);
  const auto& cfg = std::get<config::Config>(loaded);
  adapters::SystemClock clock;
  auto summary = runtime::serve::Replay(cfg, clock, file, std::cerr);
  if (!summary.ok()) {
    std::cerr << "replay: " << summary.status().ToString() << "\n";
    return ExitCodeFor(Step::kReplay, summary.status());
  }
  std::cout << "replay: " << summary->stored << " records stored in " << cfg.storage.path << " for serve, "
            << summary->skipped << " skipped\n";
  return kExitOk;
}

}  // namespace pwrcell::cli
