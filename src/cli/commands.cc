#include "cli/commands.h"

#include <fmt/format.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "adapters/sqlite/sqlite_device_store.h"
#include "adapters/system/system_clock.h"
#include "cli/exit_codes.h"
#include "config/config.h"
#include "domain/device_json.h"
#include "domain/record_decoding.h"
#include "domain/telemetry_mapping.h"
#include "runtime/serve/store.h"

namespace pwrcell::cli {
namespace {

using domain::DeviceRecord;

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string OrDash(const std::optional<std::string>& s) {
  return s && !s->empty() ? *s : "-";
}
std::string OrDash(const std::optional<Timestamp>& t) {
  return t ? FormatIso8601(*t) : "-";
}

// Opens the device table for reading: the embedded file (a missing file is reported, never
// silently created) or the DynamoDB table of an AWS configuration.
std::variant<std::unique_ptr<ports::DeviceStore>, int> OpenStore(const StoreLocation& where, std::ostream& err) {
  auto target = ResolveStore(where, err);
  if (std::holds_alternative<int>(target)) return std::get<int>(target);
  const StoreTarget& store_target = std::get<StoreTarget>(target);
  if (store_target.aws) {
    auto store = OpenAwsStore(*store_target.aws, /*ingest=*/false, err);
    if (std::holds_alternative<int>(store)) return std::get<int>(store);
    // The DynamoDB store holds its own reference to the AWS client: the rest of the Store can go.
    return std::move(std::get<runtime::serve::Store>(store).devices);
  }
  const std::string& db = store_target.db_path;
  if (!std::filesystem::exists(db)) {
    err << "error: no device table at " << db << " (has the adapter run with this [storage] path?)\n";
    return kExitNotFound;
  }
  auto store = adapters::SqliteDeviceStore::Open(db);
  if (!store.ok()) {
    err << "error: cannot open device table " << db << ": " << store.status().message() << "\n";
    return kExitFailure;
  }
  return std::move(store).value();
}

std::string StateCell(const DeviceRecord& d) {
  return d.remote_state ? std::string(domain::RemoteStateName(*d.remote_state)) : "-";
}

}  // namespace

std::variant<StoreTarget, int> ResolveStore(const StoreLocation& where, std::ostream& err) {
  if (where.db_path) return StoreTarget{*where.db_path, std::nullopt};
  std::string config_path = where.config_path.value_or("deployment.toml");
  if (!where.config_path && !std::filesystem::exists(config_path)) {
    return StoreTarget{config::StorageConfig{}.path, std::nullopt};
  }
  auto cfg = config::LoadConfigFile(config_path, config::ProcessEnvironment());
  if (!cfg.ok()) {
    err << "error: " << cfg.status().message() << "\n";
    return ExitCodeFor(Step::kLoadConfig, cfg.status());
  }
  if (cfg->backend.kind == "aws") return StoreTarget{{}, std::move(*cfg)};
  return StoreTarget{cfg->storage.path, std::nullopt};
}

std::variant<runtime::serve::Store, int> OpenAwsStore(const config::Config& config, bool ingest, std::ostream& err) {
  static const adapters::SystemClock clock{};  // the queues' time (the AWS backends keep SQS's)
  runtime::serve::StoreOpenOptions options;
  options.ingest = ingest;
  auto store = runtime::serve::Store::Open(config, clock, /*metrics=*/nullptr, options);
  if (store.ok()) return std::move(store).value();
  const Status& status = store.status();
  err << "error: " << status.message();
  switch (status.code()) {
    case StatusCode::kInvalidArgument:  // credentials or region missing: the message names the variable
      err << "\n";
      return kExitBadConfig;
    case StatusCode::kNotFound:
      err << " (has `pwrcell-adapter aws setup` or the stack created the resources [aws] names?)\n";
      return kExitNotFound;
    default:
      err << "\n";
      return kExitFailure;
  }
}

int ConfigCheck(const std::string& path, bool print_effective, std::ostream& out, std::ostream& err) {
  auto cfg = config::LoadConfigFile(path, config::ProcessEnvironment());
  if (!cfg.ok()) {
    err << "error: " << cfg.status().message() << "\n";
    return ExitCodeFor(Step::kLoadConfig, cfg.status());
  }
  out << path << ": OK\n";
  if (cfg->backend.kind == "aws" || cfg->secrets.backend == "aws") {
    // The file is valid; what AWS needs beyond it comes from the environment. Said, not judged:
    // the environment `serve` will run in may not be this one.
    auto aws = runtime::serve::AwsOptionsFromConfig(*cfg);
    if (aws.ok()) {
      out << "AWS: region " << aws->region << ", credentials from the environment ("
          << (aws->credentials.session_token.empty() ? "long-term keys" : "temporary, with a session token") << ")\n";
    } else {
      out << "note: AWS is used but " << aws.status().message() << " in this environment; serve needs it\n";
    }
  }
  if (print_effective) out << config::DescribeConfig(*cfg);
  return kExitOk;
}

int DevicesList(const StoreLocation& where, bool json, std::ostream& out, std::ostream& err) {
  auto opened = OpenStore(where, err);
  if (std::holds_alternative<int>(opened)) return std::get<int>(opened);
  auto& store = *std::get<std::unique_ptr<ports::DeviceStore>>(opened);
  // A page at a time, so that memory stays bounded by the page at any fleet size.
  constexpr std::size_t kPage = 1000;
  std::size_t count = 0;
  std::string after;
  if (json) {
    out << "[";
  } else {
    out << fmt::format("{:<38} {:<24} {:<4} {:<8} {:<14} {:<14} {:<8} {}\n", "REMOTE_ID", "NAME", "SIM", "COUPLING",
                       "INVERTER_RCPN", "COMMISSIONING", "STATE", "LAST_HEARD");
  }
  while (true) {
    auto devices = store.ListPage({}, after, kPage);
    if (!devices.ok()) {
      if (json) out << "]\n";
      err << "error: " << devices.status().ToString() << "\n";
      return kExitFailure;
    }
    for (const auto& d : *devices) {
      if (json) {
        // The same text as one nlohmann array dumped with indent 2.
        std::string item = domain::ToJson(d).dump(2);
        std::string indented;
        for (char c : item) {
          indented += c;
          if (c == '\n') indented += "  ";
        }
        out << (count == 0 ? "\n  " : ",\n  ") << indented;
      } else {
        out << fmt::format("{:<38} {:<24} {:<4} {:<8} {:<14} {:<14} {:<8} {}\n", d.remote_id, d.name,
                           d.is_simulated ? "yes" : "no", domain::CouplingName(d.coupling),
                           d.inverter_rcpns.empty() ? "-" : fmt::format("{}", fmt::join(d.inverter_rcpns, ",")),
                           domain::CommissioningStateName(d.commissioning.state), StateCell(d),
                           OrDash(d.last_heard_at));
      }
      ++count;
    }
    if (devices->size() < kPage) break;
    after = devices->back().remote_id;
  }
  if (json) {
    out << (count == 0 ? "]\n" : "\n]\n");
    return kExitOk;
  }
  out << count << (count == 1 ? " system\n" : " systems\n");
  return kExitOk;
}

int DevicesShow(const StoreLocation& where, const std::string& remote_id, bool json, std::ostream& out,
                std::ostream& err) {
  auto opened = OpenStore(where, err);
  if (std::holds_alternative<int>(opened)) return std::get<int>(opened);
  auto device = std::get<std::unique_ptr<ports::DeviceStore>>(opened)->Get(remote_id);
  if (!device.ok()) {
    err << "error: " << device.status().ToString() << "\n";
    return kExitFailure;
  }
  if (!device->has_value()) {
    err << "error: no device with remote_id " << remote_id << "\n";
    return kExitNotFound;
  }
  const DeviceRecord& d = **device;
  if (json) {
    out << domain::ToJson(d).dump(2) << "\n";
    return kExitOk;
  }
  auto row = [&out](std::string_view k, const std::string& v) { out << fmt::format("{:<22} {}\n", k, v); };
  row("remote_id", d.remote_id);
  row("concerto_asset_id", d.concerto_asset_id.empty() ? "-" : d.concerto_asset_id);
  row("name", d.name);
  row("simulated", d.is_simulated ? "yes" : "no");
  row("rated_power_kw", d.rated_power_kw ? fmt::format("{}", *d.rated_power_kw) : "-");
  row("site", d.site ? fmt::format("{} (remoteId {}, {})", d.site->site_id, d.site->remote_id, d.site->name) : "-");
  std::vector<std::string> inverters;
  for (const auto& i : d.inverters) inverters.push_back(fmt::format("{} (remoteId {})", i.asset_id, i.remote_id));
  row("inverters", inverters.empty() ? "-" : fmt::format("{}", fmt::join(inverters, ", ")));
  row("batteries", std::to_string(d.batteries.size()));
  row("photovoltaics", std::to_string(d.photovoltaics.size()));
  row("site_meter", d.site_meter ? d.site_meter->asset_id : "-");
  row("inverter_rcpns", d.inverter_rcpns.empty() ? "-" : fmt::format("{}", fmt::join(d.inverter_rcpns, ", ")));
  row("coupling", std::string(domain::CouplingName(d.coupling)));
  row("metadata_fetched_at", OrDash(d.metadata_fetched_at));
  row("commissioning", std::string(domain::CommissioningStateName(d.commissioning.state)) +
                           (d.commissioning.reason.empty() ? "" : " (" + d.commissioning.reason + ")"));
  row("last_heard_at", OrDash(d.last_heard_at));
  const auto inverter_state = d.InverterState();  // the system's: see DeviceRecord::SystemReading
  row("inverter_state", inverter_state ? fmt::format("{} (0x{:04X})", *inverter_state, *inverter_state) : "-");
  row("sys_mode", d.SysMode() ? std::to_string(*d.SysMode()) : "-");
  row("system_status", OrDash(d.system_status));
  row("system_status_at", OrDash(d.system_status_at));
  row("remote_state", StateCell(d) + (d.remote_state_reason.empty() ? "" : " (" + d.remote_state_reason + ")"));
  row("registered_at", OrDash(d.registered_at));
  row("updated_at", OrDash(d.updated_at));
  row("version", std::to_string(d.version));
  return kExitOk;
}

int TelemetryMap(const std::string& device_json_path, const std::string& record_path, bool text_format, bool json,
                 std::ostream& out, std::ostream& err) {
  const auto device_text = ReadFile(device_json_path);
  if (!device_text) {
    err << "error: cannot read device file " << device_json_path << "\n";
    return kExitNotFound;
  }
  const auto parsed = nlohmann::json::parse(*device_text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    err << "error: " << device_json_path << " is not valid JSON\n";
    return kExitInvalidInput;
  }
  auto device = domain::DeviceFromJson(parsed);
  if (!device.ok()) {
    err << "error: " << device_json_path << ": " << device.status().message() << "\n";
    return kExitInvalidInput;
  }
  const auto record_bytes = ReadFile(record_path);
  if (!record_bytes) {
    err << "error: cannot read record file " << record_path << "\n";
    return kExitNotFound;
  }
  std::string wire = *record_bytes;
  if (text_format) {
    pwrcell::ces::v1::EnergyRecordSet from_text;
    if (!google::protobuf::TextFormat::ParseFromString(*record_bytes, &from_text)) {
      err << "error: " << record_path << " is not an EnergyRecordSet in protobuf text format\n";
      return kExitInvalidInput;
    }
    wire = from_text.SerializeAsString();
  }
  auto record = domain::DecodeRecordSet(wire);
  if (!record.ok()) {
    err << "error: " << record_path << ": " << record.status().message() << "\n";
    return kExitInvalidInput;
  }
  const auto mapped = domain::MapRecordSet(*record, *device);
  if (json) {
    nlohmann::json points = nlohmann::json::array();
    for (const auto& p : mapped.points) {
      points.push_back({{"assetId", p.asset_id},
                        {"metric", domain::MetricName(p.metric)},
                        {"timestamp", FormatIso8601(p.timestamp)},
                        {"value", p.value}});
    }
    out << nlohmann::json{{"points", points}, {"unmapped_channels", mapped.unmapped_channels}}.dump(2) << "\n";
    return kExitOk;
  }
  out << fmt::format("{:<28} {:<18} {:<22} {}\n", "ASSET", "METRIC", "TIMESTAMP", "VALUE");
  for (const auto& p : mapped.points) {
    out << fmt::format("{:<28} {:<18} {:<22} {}\n", p.asset_id, domain::MetricName(p.metric),
                       FormatIso8601(p.timestamp), p.value);
  }
  out << mapped.points.size() << " points, " << mapped.unmapped_channels << " unmapped channels\n";
  return kExitOk;
}

}  // namespace pwrcell::cli
