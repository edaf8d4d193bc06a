// `pwrcell-adapter config sam-parameters FILE`: the `sam deploy --parameter-overrides` value of
// template.yml for a deployment.toml, so that the Lambda stack runs with the settings `serve`
// would (docs/LAMBDA.md, "Template parameters and the deployment.toml keys they come from").
//
// The file is loaded exactly as `config check` loads it (validation, environment overrides). Then
// each template parameter takes its key's value, checked against template.yml's AllowedValues,
// AllowedPattern, MinValue and MaxValue where the configuration's own bounds are wider (a schedule
// is an EventBridge rate in whole minutes from a fixed list; an SQS MaximumConcurrency is at least
// 2; the queues' visibility timeout is also the gateway functions' timeout, at most 900 s; ...). A
// value the template refuses is an error naming the key, the value and why: exit 3, and nothing on
// stdout (a half list would deploy defaults silently). Keys the template has no parameter for are
// named on stderr as notes, one line each, when their value differs from the default: the stack
// ignores them, and the operator should know.
//
// Usage: sam deploy --parameter-overrides "$(pwrcell-adapter config sam-parameters deployment.toml)"
// (one argument: SAM splits the pairs itself and reads a double-quoted value as one).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "config/config.h"

namespace pwrcell::cli {
namespace {

// The template's AllowedValues of RegistrarPollSeconds, CesStatePollSeconds and
// LivenessSweepSeconds (its Mappings table turns each into an EventBridge rate expression).
constexpr std::array<std::int64_t, 8> kScheduleSeconds = {60, 120, 180, 300, 600, 900, 1800, 3600};
// SQS's bounds: an event source mapping's ScalingConfig.MaximumConcurrency (2..1000) and a redrive
// policy's maxReceiveCount (1..1000).
constexpr int kMinConcurrency = 2;
constexpr int kMaxReceiveCount = 1000;
// A Lambda function runs at most 15 minutes: a request that may take longer can never finish, and
// the template makes queues.visibility_timeout_s the gateway functions' timeout too.
constexpr std::int64_t kMaxFunctionSeconds = 900;
// The template's MinValue of the two request rates.
constexpr double kMinRequestsPerSecond = 0.001;
// Secrets Manager secret names: 1..512 characters, letters, digits and /_+=.@-.
constexpr std::size_t kMaxSecretNameChars = 512;

// Characters a value may have and still need no quotes, for a POSIX shell and for SAM's parser.
bool NeedsNoQuotes(std::string_view value) {
  return !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_./:@%+,-").find(c) != std::string_view::npos;
  });
}

// The value as one shell word: bare when it can be, else in double quotes with \ " $ ` escaped.
std::string ShellWord(std::string_view value) {
  if (NeedsNoQuotes(value)) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\' || c == '$' || c == '`') out += '\\';
    out += c;
  }
  return out + '"';
}

std::string Joined(const auto& values) {
  return fmt::format("{}", fmt::join(values, ", "));
}

bool HasControlCharacter(std::string_view value) {
  return std::any_of(value.begin(), value.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
}

bool ValidSecretName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxSecretNameChars && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("/_+=.@-").find(c) != std::string_view::npos;
  });
}

// One template parameter: its name, the key it comes from, its value as the template takes it,
// and why the template cannot take it (empty when it can).
struct Parameter {
  std::string_view name;
  std::string_view key;
  std::string value;
  std::string refusal;
};

std::string CheckSchedule(Seconds seconds) {
  const std::int64_t s = seconds.count();
  if (std::find(kScheduleSeconds.begin(), kScheduleSeconds.end(), s) != kScheduleSeconds.end()) return {};
  return fmt::format(
      "{}; the template takes {}",
      s % 60 != 0 ? "EventBridge schedules are whole minutes" : "not one of the template's AllowedValues",
      Joined(kScheduleSeconds));
}

std::string CheckConcurrency(int instances) {
  if (instances >= kMinConcurrency) return {};
  return fmt::format("the reserved concurrency is also the SQS event source's MaximumConcurrency, which is at least {}",
                     kMinConcurrency);
}

std::string CheckRequestTimeout(Seconds seconds) {
  if (seconds.count() <= kMaxFunctionSeconds) return {};
  return fmt::format("a Lambda function runs at most {} s, so a request may not take longer", kMaxFunctionSeconds);
}

std::string CheckSecretName(const std::string& name) {
  if (ValidSecretName(name)) return {};
  return fmt::format(
      "the stack creates this secret, and a Secrets Manager name is 1 to {} letters, digits and / _ + = . @ - "
      "(a name, not an ARN)",
      kMaxSecretNameChars);
}

std::string CheckText(const std::string& value) {
  if (!HasControlCharacter(value)) return {};
  return "a template parameter is one line of text without control characters";
}

// The template's AllowedPattern of the URLs: a lower-case scheme (the configuration accepts any
// case), nothing at or below a space.
std::string CheckUrl(const std::string& url) {
  if (!url.starts_with("http://") && !url.starts_with("https://")) {
    return "the template takes a URL starting with http:// or https:// in lower case";
  }
  const bool blank = std::any_of(url.begin(), url.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte == 0x7f;
  });
  return blank ? "the template takes a URL without spaces or control characters" : std::string();
}

std::string CheckRate(double requests_per_second) {
  if (requests_per_second >= kMinRequestsPerSecond) return {};
  return fmt::format("the template takes at least {} requests per second", kMinRequestsPerSecond);
}

std::vector<Parameter> TemplateParameters(const config::Config& c) {
  const auto number = [](double value) { return fmt::format("{}", value); };
  const auto seconds = [](Seconds s) { return std::to_string(s.count()); };
  const auto boolean = [](bool b) { return std::string(b ? "true" : "false"); };
  return {
      {"AdapterName", "adapter.name", c.adapter.name, CheckText(c.adapter.name)},
      {"AutoCommissioning", "adapter.auto_commissioning", boolean(c.adapter.auto_commissioning), {}},
      {"ConcertoRootUrl", "concerto.root_url", c.concerto.root_url, CheckUrl(c.concerto.root_url)},
      {"CesRootUrl", "ces.root_url", c.ces.root_url, CheckUrl(c.ces.root_url)},
      {"ConcertoCredentialsSecretName", "concerto.credentials_secret", c.concerto.credentials_secret,
       CheckSecretName(c.concerto.credentials_secret)},
      {"CesCredentialsSecretName", "ces.credentials_secret", c.ces.credentials_secret,
       CheckSecretName(c.ces.credentials_secret)},
      {"ConcertoTimeoutSeconds", "concerto.timeout_s", seconds(c.concerto.timeout_s),
       CheckRequestTimeout(c.concerto.timeout_s)},
      {"CesTimeoutSeconds", "ces.timeout_s", seconds(c.ces.timeout_s), CheckRequestTimeout(c.ces.timeout_s)},
      {"ConcertoRequestsPerSecond", "concerto.max_requests_per_second", number(c.concerto.max_requests_per_second),
       CheckRate(c.concerto.max_requests_per_second)},
      {"CesRequestsPerSecond", "ces.max_requests_per_second", number(c.ces.max_requests_per_second),
       CheckRate(c.ces.max_requests_per_second)},
      {"ConcertoPageSize", "concerto.page_size", std::to_string(c.concerto.page_size), {}},
      {"CesStatusBatchSize", "ces.status_batch_size", std::to_string(c.ces.status_batch_size), {}},
      {"RegistrarPollSeconds", "schedule.registrar_poll_s", seconds(c.schedule.registrar_poll_s),
       CheckSchedule(c.schedule.registrar_poll_s)},
      {"CesStatePollSeconds", "schedule.ces_state_poll_s", seconds(c.schedule.ces_state_poll_s),
       CheckSchedule(c.schedule.ces_state_poll_s)},
      {"LivenessSweepSeconds", "schedule.liveness_sweep_s", seconds(c.schedule.liveness_sweep_s),
       CheckSchedule(c.schedule.liveness_sweep_s)},
      {"MetadataRefreshSeconds", "schedule.metadata_refresh_s", seconds(c.schedule.metadata_refresh_s), {}},
      {"OfflineTimeoutSeconds", "liveness.offline_timeout_s", seconds(c.liveness.offline_timeout_s), {}},
      {"RecordIntervalSeconds", "liveness.record_interval_s", seconds(c.liveness.record_interval_s), {}},
      {"SimulatedRecordIntervalSeconds", "simulated.record_interval_s", seconds(c.simulated.record_interval_s), {}},
      {"MaxReceives", "queues.max_receives", std::to_string(c.queues.max_receives),
       c.queues.max_receives <= kMaxReceiveCount
           ? std::string()
           : fmt::format("it is also the queues' redrive maxReceiveCount, which SQS takes from 1 to {}",
                         kMaxReceiveCount)},
      {"VisibilityTimeoutSeconds", "queues.visibility_timeout_s", seconds(c.queues.visibility_timeout_s),
       c.queues.visibility_timeout_s.count() <= kMaxFunctionSeconds
           ? std::string()
           : fmt::format("the template makes it the gateway functions' timeout too (SQS requires the visibility "
                         "timeout to be at least that), and a Lambda function runs at most {} s",
                         kMaxFunctionSeconds)},
      {"ConcertoGatewayConcurrency", "lambda.concerto_control_concurrency",
       std::to_string(c.lambda.concerto_control_concurrency), CheckConcurrency(c.lambda.concerto_control_concurrency)},
      {"ConcertoTelemetryGatewayConcurrency", "lambda.concerto_telemetry_concurrency",
       std::to_string(c.lambda.concerto_telemetry_concurrency),
       CheckConcurrency(c.lambda.concerto_telemetry_concurrency)},
      {"PwrcellGatewayConcurrency", "lambda.ces_concurrency", std::to_string(c.lambda.ces_concurrency),
       CheckConcurrency(c.lambda.ces_concurrency)},
  };
}

// Why the template has no parameter for a key (docs/LAMBDA.md's list); the reason shown in its note.
std::string WhyNotAParameter(std::string_view section, std::string_view key) {
  if (section == "backend") return "the functions always keep the store on AWS (DynamoDB, SQS)";
  if (section == "storage") return "the stack has no SQLite file";
  if (section == "secrets") return "the functions read the stack's own secrets from Secrets Manager";
  if (section == "aws") return "the stack names its own resources";
  if (section == "telemetry") return "telemetry comes from the stack's Kinesis stream, there is no HTTP ingest";
  if (section == "admin") return "the functions have no admin API";
  if (key == "workers") return "concurrency is the functions': lambda.*_concurrency";
  return "the functions run with its default";
}

// Each `[section]` key's value as DescribeConfig writes it: the one text form of every kind of
// value, so that a changed value of any key is found without naming its type here.
std::map<std::string, std::string> Literals(const config::Config& config) {
  std::map<std::string, std::string> literals;
  std::string section;
  std::string_view text;
  const std::string described = config::DescribeConfig(config);
  text = described;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.starts_with('[') && line.ends_with(']')) {
      section = std::string(line.substr(1, line.size() - 2));
    } else if (const std::size_t eq = line.find(" = "); eq != std::string_view::npos && !line.starts_with('#')) {
      literals[section + "." + std::string(line.substr(0, eq))] = std::string(line.substr(eq + 3));
    }
  }
  return literals;
}

// Where a key's value came from, for a message: the environment variable that set it, or the file.
std::string Origin(const config::KeyInfo& info, const std::string& path, const config::Environment& env) {
  if (!info.alias_var.empty() && env(info.alias_var)) return info.alias_var;
  if (env(info.env_var)) return info.env_var;
  return path;
}

}  // namespace

int ConfigSamParameters(const std::string& path, std::ostream& out, std::ostream& err) {
  const config::Environment env = config::ProcessEnvironment();
  auto cfg = config::LoadConfigFile(path, env);
  if (!cfg.ok()) {
    err << "error: " << cfg.status().message() << "\n";
    return ExitCodeFor(Step::kLoadConfig, cfg.status());
  }
  const std::vector<Parameter> parameters = TemplateParameters(*cfg);
  const auto info_of = [](std::string_view full_key) -> const config::KeyInfo* {
    for (const config::KeyInfo& info : config::Keys()) {
      if (info.section + "." + info.key == full_key) return &info;
    }
    return nullptr;
  };

  bool refused = false;
  for (const Parameter& p : parameters) {
    if (p.refusal.empty()) continue;
    const config::KeyInfo* info = info_of(p.key);
    err << "error: " << (info ? Origin(*info, path, env) : path) << ": " << p.key << " = " << ShellWord(p.value) << ": "
        << p.refusal << " (template parameter " << p.name << ")\n";
    refused = true;
  }
  if (refused) return kExitBadConfig;

  const config::Config defaults{};
  const std::map<std::string, std::string> effective = Literals(*cfg);
  const std::map<std::string, std::string> default_literals = Literals(defaults);
  for (const config::KeyInfo& info : config::Keys()) {
    const std::string full_key = info.section + "." + info.key;
    const bool parameter =
        std::any_of(parameters.begin(), parameters.end(), [&](const Parameter& p) { return p.key == full_key; });
    if (parameter) continue;
    const auto value = effective.find(full_key);
    const auto default_value = default_literals.find(full_key);
    if (value == effective.end() || default_value == default_literals.end() || value->second == default_value->second) {
      continue;
    }
    err << "note: " << full_key << " is not a template parameter (" << WhyNotAParameter(info.section, info.key)
        << "); ignored\n";
  }

  std::string line;
  for (const Parameter& p : parameters) {
    if (!line.empty()) line += ' ';
    line += std::string(p.name) + "=" + ShellWord(p.value);
  }
  out << line << "\n";
  return kExitOk;
}

}  // namespace pwrcell::cli
