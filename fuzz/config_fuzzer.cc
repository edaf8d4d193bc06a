// Fuzzes the configuration loader (config/config.h): TOML text -> Config, with environment
// overrides. The input is the TOML text, optionally followed by a line "#%env" and then
// NAME=value lines that form the environment (config::MapEnvironment). LoadConfigString must
// return a Config or kInvalidArgument, never throw or crash; a Config it returns is described
// (DescribeConfig, what `config check --print` prints).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSeparator = "\n#%env\n";
  std::string_view toml = input;
  std::map<std::string, std::string> variables;
  if (const auto at = input.find(kSeparator); at != std::string_view::npos) {
    toml = input.substr(0, at);
    std::string_view env = input.substr(at + kSeparator.size());
    while (!env.empty()) {
      const auto end = env.find('\n');
      const std::string_view line = env.substr(0, end);
      if (const auto eq = line.find('='); eq != std::string_view::npos) {
        variables[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
      }
      if (end == std::string_view::npos) break;
      env.remove_prefix(end + 1);
    }
  }
  const auto config =
      pwrcell::config::LoadConfigString(toml, "fuzz.toml", pwrcell::config::MapEnvironment(std::move(variables)));
  if (config.ok()) {
    (void)pwrcell::config::DescribeConfig(*config);
  } else if (config.status().code() != pwrcell::StatusCode::kInvalidArgument) {
    std::abort();
  }
  return 0;
}
