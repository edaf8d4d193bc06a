#include "sim/fleet/scenario.h"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "fleet/system_spec.h"

namespace pwrcell::fleetsim {
namespace {

constexpr std::array<std::pair<FaultKind, std::string_view>, 9> kFaultKinds{{
    {FaultKind::kSilent, "silent"},
    {FaultKind::kResume, "resume"},
    {FaultKind::kInverterError, "inverter_error"},
    {FaultKind::kInverterOk, "inverter_ok"},
    {FaultKind::kCesStatus, "ces_status"},
    {FaultKind::kMixedRatings, "mixed_ratings"},
    {FaultKind::kSecondInverter, "second_inverter"},
    {FaultKind::kCes5xx, "ces_5xx"},
    {FaultKind::kCes429, "ces_429"},
}};

constexpr std::array<std::string_view, 5> kCesStatuses{"SUCCESS", "UNKNOWN", "NEVER_CONNECTED", "DISCONNECTED",
                                                       "ERROR"};

// Reads typed values out of a TOML table, remembering the first problem with its location.
class Reader {
 public:
  Reader(std::string source, const toml::table& table, std::string section)
      : source_(std::move(source)), table_(table), section_(std::move(section)) {}

  std::optional<std::string> String(std::string_view key, bool required) {
    const toml::node* node = Find(key, required);
    if (!node) return std::nullopt;
    if (auto v = node->value<std::string>(); v && node->is_string()) return *v;
    Fail(key, *node, "a string");
    return std::nullopt;
  }

  std::optional<std::int64_t> Integer(std::string_view key, bool required) {
    const toml::node* node = Find(key, required);
    if (!node) return std::nullopt;
    if (node->is_integer()) return node->value<std::int64_t>();
    Fail(key, *node, "an integer");
    return std::nullopt;
  }

  std::optional<double> Number(std::string_view key, bool required) {
    const toml::node* node = Find(key, required);
    if (!node) return std::nullopt;
    if (node->is_integer()) return static_cast<double>(*node->value<std::int64_t>());
    if (node->is_floating_point()) return node->value<double>();
    Fail(key, *node, "a number");
    return std::nullopt;
  }

  std::optional<Timestamp> Time(std::string_view key, bool required) {
    const toml::node* node = Find(key, required);
    if (!node) return std::nullopt;
    std::optional<std::string> text;
    if (node->is_string()) {
      text = node->value<std::string>();
      // "now": the wall clock when the program reads the scenario, to the second, so that record
      // timestamps track real time (a live demo or test against an adapter judging staleness by
      // its own clock, which wants speed = 1).
      if (*text == "now") {
        return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
      }
    } else if (node->is_date_time()) {
      std::ostringstream out;
      out << *node->as_date_time();
      text = out.str();
    }
    if (text) {
      if (auto t = ParseIso8601(*text)) return t;
    }
    Fail(key, *node, "a UTC time like \"2026-06-21T04:00:00Z\" or \"now\"");
    return std::nullopt;
  }

  // Flags keys that no reader asked for: a typo must not silently fall back to a default.
  void RejectUnknownKeys() {
    for (const auto& [key, node] : table_) {
      if (!known_.contains(std::string(key.str())) && !status_) {
        status_ = InvalidArgumentError(Where(node) + "unknown key '" + std::string(key.str()) + "' in " + section_);
      }
    }
  }

  void Fail(std::string_view key, const toml::node& node, std::string_view expected) {
    if (status_) return;
    std::ostringstream shown;
    if (node.is_table()) {
      shown << "a table";
    } else {
      node.visit([&shown](const auto& n) { shown << n; });
    }
    status_ = InvalidArgumentError(Where(node) + section_ + "." + std::string(key) + " = " + shown.str() +
                                   ": expected " + std::string(expected));
  }

  void Problem(std::string_view key, const std::string& message) {
    if (status_) return;
    const toml::node* node = table_.get(key);
    status_ = InvalidArgumentError((node ? Where(*node) : source_ + ": ") + section_ + "." + std::string(key) + ": " +
                                   message);
  }
  void Missing(std::string message) {
    if (!status_) status_ = InvalidArgumentError(source_ + ": " + section_ + ": " + std::move(message));
  }

  const std::optional<Status>& status() const { return status_; }

 private:
  const toml::node* Find(std::string_view key, bool required) {
    known_.insert(std::string(key));
    const toml::node* node = table_.get(key);
    if (!node && required && !status_) {
      status_ = InvalidArgumentError(source_ + ": " + section_ + ": missing required key '" + std::string(key) + "'");
    }
    return node;
  }

  std::string Where(const toml::node& node) const {
    const auto& begin = node.source().begin;
    return source_ + ":" + std::to_string(begin.line) + ": ";
  }

  std::string source_;
  const toml::table& table_;
  std::string section_;
  std::set<std::string> known_;
  std::optional<Status> status_;
};

}  // namespace

std::string_view FaultKindName(FaultKind kind) {
  for (const auto& [k, name] : kFaultKinds) {
    if (k == kind) return name;
  }
  return "unknown";
}

std::optional<FaultKind> ParseFaultKind(std::string_view name) {
  for (const auto& [k, n] : kFaultKinds) {
    if (n == name) return k;
  }
  return std::nullopt;
}

bool FaultNeedsSystem(FaultKind kind) {
  return kind != FaultKind::kCes5xx && kind != FaultKind::kCes429;
}

bool FaultAddsInverter(FaultKind kind) {
  return kind == FaultKind::kMixedRatings || kind == FaultKind::kSecondInverter;
}

std::string NextRcpn(const std::string& first) {
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(first.data(), first.data() + first.size(), value, 16);
  if (error != std::errc() || end != first.data() + first.size() || first.empty()) return "";
  constexpr std::uint64_t kMask = (std::uint64_t{1} << 48) - 1;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%012llX", static_cast<unsigned long long>((value + 1) & kMask));
  return buf;
}

Result<Scenario> LoadScenarioString(std::string_view text, std::string_view source_name) {
  const std::string source(source_name);
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    // toml++ reports parse errors by exception; they stop here and become a Status.
    return InvalidArgumentError(source + ":" + std::to_string(e.source().begin.line) + ": " +
                                std::string(e.description()));
  }

  for (const auto& [key, node] : root) {
    if (key.str() != "scenario" && key.str() != "fault") {
      return InvalidArgumentError(source + ":" + std::to_string(node.source().begin.line) + ": unknown section '" +
                                  std::string(key.str()) + "' (expected [scenario] and [[fault]])");
    }
  }
  const toml::table* section = root["scenario"].as_table();
  if (!section) return InvalidArgumentError(source + ": missing [scenario] table");

  Scenario scenario;
  Reader r(source, *section, "scenario");
  scenario.name = r.String("name", true).value_or("");
  scenario.seed = r.Integer("seed", true).value_or(0);
  const auto systems = r.Integer("systems", true);
  if (auto start = r.Time("start", true)) scenario.start = *start;
  const auto interval_s = r.Integer("interval_s", false);
  scenario.speed = r.Number("speed", false).value_or(scenario.speed);
  scenario.ac_coupled_fraction = r.Number("ac_coupled_fraction", false).value_or(scenario.ac_coupled_fraction);
  scenario.site_meter_fraction = r.Number("site_meter_fraction", false).value_or(scenario.site_meter_fraction);
  scenario.id_prefix = r.String("id_prefix", false).value_or("");
  scenario.duration_s = r.Number("duration_s", false);
  r.RejectUnknownKeys();
  if (r.status()) return *r.status();

  if (scenario.name.empty()) r.Problem("name", "must not be empty");
  if (*systems < 1 || *systems > 1'000'000) r.Problem("systems", "expected 1..1000000 systems");
  if (interval_s && *interval_s < 1) r.Problem("interval_s", "expected whole seconds >= 1");
  if (!(scenario.speed > 0)) r.Problem("speed", "expected simulated seconds per wall second > 0");
  if (!(scenario.ac_coupled_fraction >= 0 && scenario.ac_coupled_fraction <= 1)) {
    r.Problem("ac_coupled_fraction", "expected a fraction in 0..1");
  }
  if (!(scenario.site_meter_fraction >= 0 && scenario.site_meter_fraction <= 1)) {
    r.Problem("site_meter_fraction", "expected a fraction in 0..1");
  }
  if (scenario.duration_s && !(*scenario.duration_s > 0)) r.Problem("duration_s", "expected seconds > 0");
  if (r.status()) return *r.status();
  scenario.systems = static_cast<int>(*systems);
  if (interval_s) scenario.interval = std::chrono::seconds(*interval_s);

  std::unordered_map<std::string, int> index_of;
  scenario.system_ids.reserve(static_cast<std::size_t>(scenario.systems));
  for (int i = 0; i < scenario.systems; ++i) {
    scenario.system_ids.push_back(fleet::FleetSystemId(scenario.seed, i, scenario.id_prefix));
    index_of.emplace(scenario.system_ids.back(), i);
  }

  if (const toml::node* faults_node = root.get("fault")) {
    const toml::array* faults = faults_node->as_array();
    if (!faults) return InvalidArgumentError(source + ": 'fault' must be an array of tables ([[fault]])");
    int n = 0;
    for (const toml::node& element : *faults) {
      const std::string label = "fault[" + std::to_string(n++) + "]";
      const toml::table* table = element.as_table();
      if (!table)
        return InvalidArgumentError(std::string(source).append(": ").append(label).append(": must be a table"));
      Reader fr(source, *table, label);
      Fault fault;
      fault.at_s = fr.Number("at_s", true).value_or(0);
      const auto kind_name = fr.String("kind", true);
      const auto system = fr.Integer("system", false);
      const auto system_id = fr.String("system_id", false);
      const auto inverter_state = fr.Integer("inverter_state", false);
      const auto inverter = fr.Integer("inverter", false);
      fault.status = fr.String("status", false);
      fault.duration_s = fr.Number("duration_s", false);
      fr.RejectUnknownKeys();
      if (fr.status()) return *fr.status();

      const auto kind = ParseFaultKind(*kind_name);
      if (!kind) {
        std::string names;
        for (const auto& [k, name] : kFaultKinds) names += (names.empty() ? "" : " | ") + std::string(name);
        fr.Problem("kind", "unknown kind \"" + *kind_name + "\" (expected " + names + ")");
        return *fr.status();
      }
      fault.kind = *kind;
      if (!(fault.at_s >= 0)) fr.Problem("at_s", "expected simulated seconds >= 0");
      if (system && system_id) fr.Problem("system_id", "give either system or system_id, not both");
      if (system) {
        if (*system < 0 || *system >= scenario.systems) {
          fr.Problem("system", "expected a 0-based index below systems = " + std::to_string(scenario.systems));
        } else {
          fault.system_index = static_cast<int>(*system);
          fault.system_id = scenario.system_ids[static_cast<std::size_t>(*system)];
        }
      }
      if (system_id) {
        const auto it = index_of.find(*system_id);
        if (it == index_of.end()) {
          fr.Problem("system_id", "\"" + *system_id + "\" is not a system of this fleet (see --print-fleet)");
        } else {
          fault.system_index = it->second;
          fault.system_id = *system_id;
        }
      }
      if (FaultNeedsSystem(fault.kind) && !system && !system_id) {
        fr.Missing("kind \"" + *kind_name + "\" needs system (0-based index) or system_id");
      }
      if (inverter_state) {
        if (fault.kind != FaultKind::kInverterError) {
          fr.Problem("inverter_state", "only applies to kind \"inverter_error\"");
        } else if (*inverter_state < 0 || *inverter_state > 0xFFFFFFFFLL) {
          fr.Problem("inverter_state", "expected a uint32 inverter state (error states are 28672..32767)");
        }
      }
      if (fault.kind == FaultKind::kInverterError) {
        fault.inverter_state = static_cast<std::uint32_t>(inverter_state.value_or(kDefaultErrorInverterState));
      }
      if (inverter) {
        if (fault.kind != FaultKind::kInverterError && fault.kind != FaultKind::kInverterOk) {
          fr.Problem("inverter", "only applies to kinds \"inverter_error\" and \"inverter_ok\"");
        } else if (*inverter != 0 && *inverter != 1) {
          fr.Problem("inverter", "expected 0 (the first inverter) or 1 (the second)");
        } else {
          fault.inverter = static_cast<int>(*inverter);
        }
      }
      if (fault.kind == FaultKind::kCesStatus) {
        if (!fault.status) {
          fr.Missing("kind \"ces_status\" needs status (SUCCESS | UNKNOWN | NEVER_CONNECTED | DISCONNECTED | ERROR)");
        } else if (std::find(kCesStatuses.begin(), kCesStatuses.end(), *fault.status) == kCesStatuses.end()) {
          fr.Problem("status", "expected SUCCESS | UNKNOWN | NEVER_CONNECTED | DISCONNECTED | ERROR");
        }
      } else if (fault.status) {
        fr.Problem("status", "only applies to kind \"ces_status\"");
      }
      if (fault.kind == FaultKind::kCes5xx || fault.kind == FaultKind::kCes429) {
        if (!fault.duration_s || !(*fault.duration_s > 0)) {
          fr.Missing("kind \"" + *kind_name + "\" needs duration_s > 0 (simulated seconds)");
        }
      } else if (fault.duration_s) {
        fr.Problem("duration_s", "only applies to kinds \"ces_5xx\" and \"ces_429\"");
      }
      if (fr.status()) return *fr.status();
      scenario.faults.push_back(std::move(fault));
    }
  }
  for (std::size_t i = 0; i < scenario.faults.size(); ++i) {
    const Fault& fault = scenario.faults[i];
    if (fault.inverter.value_or(0) != 1) continue;
    const bool added = std::any_of(scenario.faults.begin(), scenario.faults.end(), [&](const Fault& other) {
      return FaultAddsInverter(other.kind) && other.system_index == fault.system_index;
    });
    if (!added) {
      return InvalidArgumentError(source + ": fault[" + std::to_string(i) +
                                  "].inverter = 1: the system has no second inverter (add a \"second_inverter\" or "
                                  "\"mixed_ratings\" fault for it)");
    }
  }
  return scenario;
}

Result<Scenario> LoadScenarioFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot read scenario file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return LoadScenarioString(text.str(), path);
}

}  // namespace pwrcell::fleetsim
