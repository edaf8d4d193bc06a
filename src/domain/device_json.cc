#include "domain/device_json.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>

namespace pwrcell::domain {
namespace {

using nlohmann::json;

template <typename T>
json OrNull(const std::optional<T>& value) {
  return value ? json(*value) : json(nullptr);
}

json TimestampOrNull(const std::optional<Timestamp>& t) {
  return t ? json(FormatIso8601(*t)) : json(nullptr);
}

json AssetJson(const AssetRef& a) {
  return {{"asset_id", a.asset_id}, {"remote_id", a.remote_id}};
}

json OptionalAssetJson(const std::optional<AssetRef>& a) {
  return a ? AssetJson(*a) : json(nullptr);
}

json AssetsJson(const std::vector<AssetRef>& assets) {
  json array = json::array();
  for (const auto& a : assets) array.push_back(AssetJson(a));
  return array;
}

json ReadingsJson(const std::vector<InverterReading>& readings) {
  json array = json::array();
  for (const auto& r : readings) {
    array.push_back({{"rcpn", r.rcpn}, {"state", r.state}, {"sys_mode", r.sys_mode}, {"at", FormatIso8601(r.at)}});
  }
  return array;
}

json MetadataJson(const SystemMetadata& m) {
  json inverters = json::array();
  for (const auto& i : m.inverters) {
    inverters.push_back({{"rcpn", i.rcpn},
                         {"model", i.model},
                         {"rated_power_w", i.rated_power_w},
                         {"ac_pv_power_rating_kw", OrNull(i.ac_pv_power_rating_kw)}});
  }
  json batteries = json::array();
  for (const auto& b : m.batteries) {
    batteries.push_back(
        {{"rcpn", b.rcpn}, {"model", b.model}, {"capacity_wh", b.capacity_wh}, {"rated_power_w", b.rated_power_w}});
  }
  json pv_links = json::array();
  for (const auto& p : m.pv_links) pv_links.push_back({{"rcpn", p.rcpn}, {"rated_power_w", p.rated_power_w}});
  return {{"system_id", m.system_id},
          {"site_id", m.site_id},
          {"site_name", m.site_name},
          {"timezone", m.timezone},
          {"latitude", OrNull(m.latitude)},
          {"longitude", OrNull(m.longitude)},
          {"status_name", m.status_name},
          {"inverters", std::move(inverters)},
          {"batteries", std::move(batteries)},
          {"pv_links", std::move(pv_links)},
          {"site_meter_id", OrNull(m.site_meter_id)}};
}

// Reads the members of one JSON object. It keeps the first error and ignores every read after
// it, so that a decoder can read straight through and check once at the end. Absent members
// leave their target untouched (the DeviceRecord default); null is accepted only for optionals.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string path, Status& error) : path_(std::move(path)), error_(error) {
    if (!error_.ok()) return;
    if (!object.is_object()) {
      Fail(path_.empty() ? std::string("device record") : path_, "expected an object");
      return;
    }
    object_ = &object;
  }

  void Require(const char* key) {
    if (object_ != nullptr && !object_->contains(key)) Fail(Field(key), "is required");
  }

  void String(const char* key, std::string& out) {
    if (const json* v = Member(key); v != nullptr) {
      if (!v->is_string()) return Fail(Field(key), "expected a string");
      out = v->get<std::string>();
    }
  }

  void OptionalString(const char* key, std::optional<std::string>& out) {
    if (IsNull(key)) return out.reset();
    std::string s;
    if (Member(key) == nullptr) return;
    String(key, s);
    out = std::move(s);
  }

  void Bool(const char* key, bool& out) {
    if (const json* v = Member(key); v != nullptr) {
      if (!v->is_boolean()) return Fail(Field(key), "expected true or false");
      out = v->get<bool>();
    }
  }

  void Double(const char* key, double& out) {
    if (const json* v = Member(key); v != nullptr) {
      if (!v->is_number()) return Fail(Field(key), "expected a number");
      out = v->get<double>();
    }
  }

  void OptionalDouble(const char* key, std::optional<double>& out) {
    if (IsNull(key)) return out.reset();
    double d = 0;
    if (Member(key) == nullptr) return;
    Double(key, d);
    out = d;
  }

  // Any integer in [min, max]; a number with a fraction is rejected rather than truncated.
  template <typename Int>
  void Integer(const char* key, Int& out) {
    const json* v = Member(key);
    if (v == nullptr) return;
    constexpr auto kMin = std::numeric_limits<Int>::min();
    constexpr auto kMax = std::numeric_limits<Int>::max();
    if (v->is_number_unsigned()) {
      const auto u = v->get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(kMax)) return Fail(Field(key), "out of range");
      out = static_cast<Int>(u);
    } else if (v->is_number_integer()) {
      const auto i = v->get<std::int64_t>();
      if (i < static_cast<std::int64_t>(kMin) ||
          (i > 0 && static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(kMax))) {
        return Fail(Field(key), "out of range");
      }
      out = static_cast<Int>(i);
    } else {
      Fail(Field(key), "expected an integer");
    }
  }

  template <typename Int>
  void OptionalInteger(const char* key, std::optional<Int>& out) {
    if (IsNull(key)) return out.reset();
    Int i{};
    if (Member(key) == nullptr) return;
    Integer(key, i);
    out = i;
  }

  void OptionalTimestamp(const char* key, std::optional<Timestamp>& out) {
    if (IsNull(key)) return out.reset();
    const json* v = Member(key);
    if (v == nullptr) return;
    std::optional<Timestamp> parsed;
    if (v->is_string()) parsed = ParseIso8601(v->get_ref<const std::string&>());
    if (!parsed) return Fail(Field(key), "expected an ISO-8601 UTC timestamp such as \"2026-11-22T10:15:00Z\"");
    out = parsed;
  }

  template <typename Enum, typename Parser>
  void EnumName(const char* key, Enum& out, Parser parse) {
    const json* v = Member(key);
    if (v == nullptr) return;
    std::optional<Enum> parsed;
    if (v->is_string()) parsed = parse(v->get_ref<const std::string&>());
    if (!parsed) return Fail(Field(key), "unknown value " + v->dump(-1, ' ', false, json::error_handler_t::replace));
    out = *parsed;
  }

  template <typename Enum, typename Parser>
  void OptionalEnumName(const char* key, std::optional<Enum>& out, Parser parse) {
    if (IsNull(key)) return out.reset();
    Enum e{};
    if (Member(key) == nullptr) return;
    EnumName(key, e, parse);
    out = e;
  }

  // Calls read(element, element_path) for each element of the array member `key`.
  template <typename ReadElement>
  void Array(const char* key, ReadElement read) {
    const json* v = Member(key);
    if (v == nullptr) return;
    if (!v->is_array()) return Fail(Field(key), "expected an array");
    for (std::size_t i = 0; i < v->size() && error_.ok(); ++i) {
      read((*v)[i], Field(key) + "[" + std::to_string(i) + "]");
    }
  }

  // The member `key` when present and not null (the caller decodes it), else nullptr.
  const json* Nested(const char* key) { return IsNull(key) ? nullptr : Member(key); }

  // True when the member `key` is present (null included).
  bool Has(const char* key) const { return Member(key) != nullptr; }

  // A required timestamp (the member must be present).
  void RequiredTimestamp(const char* key, Timestamp& out) {
    Require(key);
    std::optional<Timestamp> t;
    OptionalTimestamp(key, t);
    if (t) out = *t;
  }

  // An array of strings.
  void Strings(const char* key, std::vector<std::string>& out) {
    std::vector<std::string> values;
    Array(key, [&](const json& e, const std::string& p) {
      if (!e.is_string()) return Fail(p, "expected a string");
      values.push_back(e.get<std::string>());
    });
    if (error_.ok() && Member(key) != nullptr) out = std::move(values);
  }

  std::string Field(const char* key) const { return path_.empty() ? std::string(key) : path_ + "." + key; }

 private:
  const json* Member(const char* key) const {
    if (object_ == nullptr || !error_.ok()) return nullptr;
    auto it = object_->find(key);
    return it == object_->end() ? nullptr : &*it;
  }
  bool IsNull(const char* key) const {
    const json* v = Member(key);
    return v != nullptr && v->is_null();
  }
  void Fail(const std::string& field, std::string_view what) {
    if (error_.ok()) error_ = InvalidArgumentError(field + ": " + std::string(what));
  }

  std::string path_;
  Status& error_;
  const json* object_ = nullptr;
};

AssetRef ReadAsset(const json& j, const std::string& path, Status& error) {
  AssetRef a;
  ObjectReader r(j, path, error);
  r.String("asset_id", a.asset_id);
  r.String("remote_id", a.remote_id);
  return a;
}

std::optional<AssetRef> ReadOptionalAsset(ObjectReader& parent, const char* key, Status& error) {
  const json* j = parent.Nested(key);
  if (j == nullptr) return std::nullopt;
  return ReadAsset(*j, parent.Field(key), error);
}

std::vector<AssetRef> ReadAssets(ObjectReader& parent, const char* key, Status& error) {
  std::vector<AssetRef> assets;
  parent.Array(key, [&](const json& j, const std::string& path) { assets.push_back(ReadAsset(j, path, error)); });
  return assets;
}

std::vector<InverterReading> ReadReadings(ObjectReader& parent, const char* key, Status& error) {
  std::vector<InverterReading> readings;
  parent.Array(key, [&](const json& j, const std::string& path) {
    InverterReading reading;
    ObjectReader r(j, path, error);
    r.String("rcpn", reading.rcpn);
    r.Integer("state", reading.state);
    r.Integer("sys_mode", reading.sys_mode);
    r.RequiredTimestamp("at", reading.at);
    readings.push_back(std::move(reading));
  });
  return readings;
}

// A record written before systems had several inverters has one "inverter" asset, one
// "inverter_rcpn" and the newest record's "inverter_state" and "sys_mode": each is read as the
// current field it became, unless the record has that field. The reading is dated last_heard_at
// (the record it came from was the newest), so read last_heard_at first.
void ReadSingleInverterFields(ObjectReader& r, DeviceRecord& d, Status& error) {
  if (!r.Has("inverters")) {
    if (auto inverter = ReadOptionalAsset(r, "inverter", error)) d.inverters = {std::move(*inverter)};
  }
  if (!r.Has("inverter_rcpns")) {
    std::string rcpn;
    r.String("inverter_rcpn", rcpn);
    if (!rcpn.empty()) d.inverter_rcpns = {std::move(rcpn)};
  }
  if (!r.Has("inverter_readings")) {
    std::optional<std::uint32_t> state;
    std::optional<int> sys_mode;
    r.OptionalInteger("inverter_state", state);
    r.OptionalInteger("sys_mode", sys_mode);
    if (state) {
      d.inverter_readings = {InverterReading{std::string(d.FirstInverterRcpn()), *state, sys_mode.value_or(0),
                                             d.last_heard_at.value_or(Timestamp{})}};
    }
  }
}

SystemMetadata ReadMetadata(const json& j, const std::string& path, Status& error) {
  SystemMetadata m;
  ObjectReader r(j, path, error);
  r.String("system_id", m.system_id);
  r.String("site_id", m.site_id);
  r.String("site_name", m.site_name);
  r.String("timezone", m.timezone);
  r.OptionalDouble("latitude", m.latitude);
  r.OptionalDouble("longitude", m.longitude);
  r.String("status_name", m.status_name);
  r.Array("inverters", [&](const json& e, const std::string& p) {
    CesInverter i;
    ObjectReader ir(e, p, error);
    ir.String("rcpn", i.rcpn);
    ir.String("model", i.model);
    ir.Double("rated_power_w", i.rated_power_w);
    ir.OptionalDouble("ac_pv_power_rating_kw", i.ac_pv_power_rating_kw);
    m.inverters.push_back(std::move(i));
  });
  r.Array("batteries", [&](const json& e, const std::string& p) {
    CesBattery b;
    ObjectReader br(e, p, error);
    br.String("rcpn", b.rcpn);
    br.String("model", b.model);
    br.Double("capacity_wh", b.capacity_wh);
    br.Double("rated_power_w", b.rated_power_w);
    m.batteries.push_back(std::move(b));
  });
  r.Array("pv_links", [&](const json& e, const std::string& p) {
    CesPvLink l;
    ObjectReader lr(e, p, error);
    lr.String("rcpn", l.rcpn);
    lr.Double("rated_power_w", l.rated_power_w);
    m.pv_links.push_back(std::move(l));
  });
  r.OptionalString("site_meter_id", m.site_meter_id);
  return m;
}

}  // namespace

nlohmann::json ToJson(const DeviceRecord& r) {
  json j = json::object();
  j["remote_id"] = r.remote_id;
  j["concerto_asset_id"] = r.concerto_asset_id;
  j["name"] = r.name;
  j["is_simulated"] = r.is_simulated;
  j["rated_power_kw"] = OrNull(r.rated_power_kw);
  j["site"] = r.site ? json{{"site_id", r.site->site_id}, {"remote_id", r.site->remote_id}, {"name", r.site->name}}
                     : json(nullptr);
  j["inverters"] = AssetsJson(r.inverters);
  j["batteries"] = AssetsJson(r.batteries);
  j["photovoltaics"] = AssetsJson(r.photovoltaics);
  j["site_meter"] = OptionalAssetJson(r.site_meter);
  j["inverter_rcpns"] = r.inverter_rcpns;
  // The first inverter (CES order) under the single-inverter names of SPEC section 2, for readers of
  // the device API; DeviceFromJson reads them only in a record without the lists.
  const AssetRef* first = r.FindInverter(r.FirstInverterRcpn());
  if (first == nullptr && !r.inverters.empty()) first = &r.inverters.front();
  j["inverter"] = first != nullptr ? OptionalAssetJson(*first) : json(nullptr);
  j["inverter_rcpn"] = std::string(r.FirstInverterRcpn());
  j["coupling"] = std::string(CouplingName(r.coupling));
  j["metadata"] = r.metadata ? MetadataJson(*r.metadata) : json(nullptr);
  j["metadata_fetched_at"] = TimestampOrNull(r.metadata_fetched_at);
  j["commissioning"] = {{"state", std::string(CommissioningStateName(r.commissioning.state))},
                        {"reason", r.commissioning.reason}};
  j["last_heard_at"] = TimestampOrNull(r.last_heard_at);
  j["inverter_readings"] = ReadingsJson(r.inverter_readings);
  // The system's state and mode (DeviceRecord::SystemReading), derived from inverter_readings for
  // readers of the device API; DeviceFromJson reads them only in a record without inverter_readings.
  j["inverter_state"] = OrNull(r.InverterState());
  j["sys_mode"] = OrNull(r.SysMode());
  j["system_status"] = OrNull(r.system_status);
  j["system_status_at"] = TimestampOrNull(r.system_status_at);
  j["remote_state"] = r.remote_state ? json(std::string(RemoteStateName(*r.remote_state))) : json(nullptr);
  j["evaluated_state"] = r.evaluated_state ? json(std::string(RemoteStateName(*r.evaluated_state))) : json(nullptr);
  j["remote_state_reason"] = r.remote_state_reason;
  j["remote_state_cause"] = r.remote_state_cause;
  j["remote_state_since"] = TimestampOrNull(r.remote_state_since);
  j["registered_at"] = TimestampOrNull(r.registered_at);
  j["updated_at"] = TimestampOrNull(r.updated_at);
  j["version"] = r.version;
  return j;
}

Result<DeviceRecord> DeviceFromJson(const nlohmann::json& j) {
  Status error;
  DeviceRecord d;
  ObjectReader r(j, "", error);
  r.Require("remote_id");
  r.String("remote_id", d.remote_id);
  r.String("concerto_asset_id", d.concerto_asset_id);
  r.String("name", d.name);
  r.Bool("is_simulated", d.is_simulated);
  r.OptionalDouble("rated_power_kw", d.rated_power_kw);
  if (const json* site = r.Nested("site"); site != nullptr) {
    SiteRef s;
    ObjectReader sr(*site, r.Field("site"), error);
    sr.String("site_id", s.site_id);
    sr.String("remote_id", s.remote_id);
    sr.String("name", s.name);
    d.site = std::move(s);
  }
  if (r.Has("inverters")) d.inverters = ReadAssets(r, "inverters", error);
  d.batteries = ReadAssets(r, "batteries", error);
  d.photovoltaics = ReadAssets(r, "photovoltaics", error);
  d.site_meter = ReadOptionalAsset(r, "site_meter", error);
  r.Strings("inverter_rcpns", d.inverter_rcpns);
  r.EnumName("coupling", d.coupling, ParseCoupling);
  if (const json* metadata = r.Nested("metadata"); metadata != nullptr) {
    d.metadata = ReadMetadata(*metadata, r.Field("metadata"), error);
  }
  r.OptionalTimestamp("metadata_fetched_at", d.metadata_fetched_at);
  if (const json* commissioning = r.Nested("commissioning"); commissioning != nullptr) {
    ObjectReader cr(*commissioning, r.Field("commissioning"), error);
    cr.EnumName("state", d.commissioning.state, ParseCommissioningState);
    cr.String("reason", d.commissioning.reason);
  }
  r.OptionalTimestamp("last_heard_at", d.last_heard_at);
  if (r.Has("inverter_readings")) d.inverter_readings = ReadReadings(r, "inverter_readings", error);
  ReadSingleInverterFields(r, d, error);
  r.OptionalString("system_status", d.system_status);
  r.OptionalTimestamp("system_status_at", d.system_status_at);
  r.OptionalEnumName("remote_state", d.remote_state, ParseRemoteState);
  r.OptionalEnumName("evaluated_state", d.evaluated_state, ParseRemoteState);
  r.String("remote_state_reason", d.remote_state_reason);
  r.String("remote_state_cause", d.remote_state_cause);
  r.OptionalTimestamp("remote_state_since", d.remote_state_since);
  r.OptionalTimestamp("registered_at", d.registered_at);
  r.OptionalTimestamp("updated_at", d.updated_at);
  r.Integer("version", d.version);
  if (!error.ok()) return error;
  return d;
}

std::string DumpDeviceJson(const DeviceRecord& record) {
  return ToJson(record).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace pwrcell::domain
