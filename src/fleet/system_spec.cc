#include "fleet/system_spec.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "fleet/hash.h"

namespace pwrcell::fleet {
namespace {

struct City {
  double latitude;
  double longitude;
  const char* timezone;
};

// Spread over the continental US so that sunrise moves across the fleet (longitude drives the
// sun) and latitudes give different day lengths. Each system gets a city plus a small jitter.
constexpr std::array<City, 26> kCities{{
    {47.61, -122.33, "America/Los_Angeles"},  // Seattle
    {45.52, -122.68, "America/Los_Angeles"},  // Portland
    {37.77, -122.42, "America/Los_Angeles"},  // San Francisco
    {34.05, -118.24, "America/Los_Angeles"},  // Los Angeles
    {32.72, -117.16, "America/Los_Angeles"},  // San Diego
    {36.17, -115.14, "America/Los_Angeles"},  // Las Vegas
    {33.45, -112.07, "America/Phoenix"},      // Phoenix
    {40.76, -111.89, "America/Denver"},       // Salt Lake City
    {39.74, -104.99, "America/Denver"},       // Denver
    {35.08, -106.65, "America/Denver"},       // Albuquerque
    {32.78, -96.80, "America/Chicago"},       // Dallas
    {30.27, -97.74, "America/Chicago"},       // Austin
    {29.76, -95.37, "America/Chicago"},       // Houston
    {39.10, -94.58, "America/Chicago"},       // Kansas City
    {44.98, -93.27, "America/Chicago"},       // Minneapolis
    {41.88, -87.63, "America/Chicago"},       // Chicago
    {29.95, -90.07, "America/Chicago"},       // New Orleans
    {42.33, -83.05, "America/Detroit"},       // Detroit
    {33.75, -84.39, "America/New_York"},      // Atlanta
    {25.76, -80.19, "America/New_York"},      // Miami
    {27.95, -82.46, "America/New_York"},      // Tampa
    {35.23, -80.84, "America/New_York"},      // Charlotte
    {38.91, -77.04, "America/New_York"},      // Washington
    {39.95, -75.17, "America/New_York"},      // Philadelphia
    {40.71, -74.01, "America/New_York"},      // New York
    {42.36, -71.06, "America/New_York"},      // Boston
}};

constexpr std::array<const char*, 32> kSurnames{{
    "Smith",     "Johnson",  "Williams",  "Brown",   "Jones",    "Garcia",   "Miller",   "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez",   "Gonzalez", "Wilson",   "Anderson", "Thomas",
    "Taylor",    "Moore",    "Jackson",   "Martin",  "Lee",      "Perez",    "Thompson", "White",
    "Harris",    "Sanchez",  "Clark",     "Ramirez", "Lewis",    "Robinson", "Walker",   "Young",
}};

// Rounds to `decimals` places; dividing by a power of ten gives the double nearest the decimal
// (35.3, not 35.300000000000004), so metadata prints as people write it.
double RoundTo(double value, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(value * scale) / scale;
}

// Rounds to a multiple of a binary-exact step (0.25, 0.5, 1).
double RoundToStep(double value, double step) {
  return std::round(value / step) * step;
}

std::string HexRcpn(std::uint64_t bits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "00%010llX", static_cast<unsigned long long>(bits & 0xFFFFFFFFFFULL));
  return buf;
}

// Draws RCP numbers from the system's stream, redrawing the (astronomically rare) repeat so that
// the devices of one system never share a number.
class RcpnAllocator {
 public:
  explicit RcpnAllocator(HashStream& stream) : stream_(stream) {}
  std::string Next() {
    for (;;) {
      std::string rcpn = HexRcpn(stream_.Next());
      if (used_.insert(rcpn).second) return rcpn;
    }
  }

 private:
  HashStream& stream_;
  std::set<std::string> used_;
};

std::string InverterModel(double rated_power_w) {
  return rated_power_w <= 7600 ? "XVT076A03" : "XVT114G03";
}

}  // namespace

double SystemSpec::BatteryCapacityWh() const {
  double total = 0;
  for (const auto& b : batteries) total += b.capacity_wh;
  return total;
}

double SystemSpec::BatteryRatedPowerW() const {
  double total = 0;
  for (const auto& b : batteries) total += b.rated_power_w;
  return total;
}

double SystemSpec::PvRatedPowerW() const {
  if (IsAcCoupled()) return inverter.ac_pv_power_rating_kw * 1000.0;
  double total = 0;
  for (const auto& link : pv_links) total += link.rated_power_w;
  return total;
}

SystemSpec MakeSystem(std::string_view system_id, std::optional<double> rated_power_kw,
                      const CompositionOptions& options) {
  SystemSpec spec;
  spec.system_id = std::string(system_id);
  spec.id_hash = Fnv1a64(system_id);
  // Every draw happens in a fixed order whatever the options, so that changing one option
  // (or passing a rated power) changes only what that option controls.
  HashStream stream(spec.id_hash);

  spec.site_id = UuidFromBits(stream.Next(), stream.Next());
  const City& city = kCities[static_cast<std::size_t>(stream.UniformInt(0, kCities.size() - 1))];
  spec.latitude = RoundTo(city.latitude + stream.Uniform(-0.4, 0.4), 2);
  spec.longitude = RoundTo(city.longitude + stream.Uniform(-0.4, 0.4), 2);
  spec.timezone = city.timezone;
  spec.site_name =
      std::string(kSurnames[static_cast<std::size_t>(stream.UniformInt(0, kSurnames.size() - 1))]) + " residence";

  const double drawn_rating_kw = stream.Chance(0.6) ? kInverterRatingsKw[0] : kInverterRatingsKw[1];
  const double rating_kw = rated_power_kw && *rated_power_kw > 0 ? *rated_power_kw : drawn_rating_kw;
  const int modules = stream.UniformInt(kMinBatteryModules, kMaxBatteryModules);
  const bool ac_coupled = stream.Chance(options.ac_coupled_fraction);
  const double ac_pv_kw = RoundTo(stream.Uniform(3.0, 10.0), 1);
  // Battery-only DC systems exist but are rare; most have 2 to 10 PV links.
  const int pv_links = stream.Chance(0.05) ? 0 : stream.UniformInt(2, kMaxPvLinks);
  const bool has_meter = stream.Chance(options.site_meter_fraction);

  spec.base_load_w = RoundTo(stream.Uniform(250, 700), 0);
  spec.morning_peak_w = RoundTo(stream.Uniform(400, 1500), 0);
  spec.evening_peak_w = RoundTo(stream.Uniform(1000, 3000), 0);
  spec.initial_soc_pct = RoundToStep(stream.Uniform(30, 90), 0.5);
  spec.age_days = RoundTo(stream.Uniform(60, 1800), 0);

  RcpnAllocator rcpns(stream);
  spec.inverter.rcpn = rcpns.Next();
  spec.inverter.rated_power_w = std::round(rating_kw * 1000.0);
  spec.inverter.model = InverterModel(spec.inverter.rated_power_w);
  spec.inverter.ac_pv_power_rating_kw = ac_coupled ? ac_pv_kw : 0.0;
  for (int i = 0; i < modules; ++i) {
    BatterySpec battery;
    battery.rcpn = rcpns.Next();
    battery.model = "PWRcell battery module 3kWh";
    battery.soh_pct = RoundToStep(stream.Uniform(93, 100), 0.25);
    spec.batteries.push_back(std::move(battery));
  }
  if (!ac_coupled) {
    for (int i = 0; i < pv_links; ++i) spec.pv_links.push_back(PvLinkSpec{rcpns.Next(), kPvLinkRatedPowerW});
  }
  if (has_meter) spec.site_meter_id = spec.system_id + "-meter";
  return spec;
}

domain::SystemMetadata ToCesMetadata(const SystemSpec& spec) {
  domain::SystemMetadata metadata;
  metadata.system_id = spec.system_id;
  metadata.site_id = spec.site_id;
  metadata.site_name = spec.site_name;
  metadata.timezone = spec.timezone;
  metadata.latitude = spec.latitude;
  metadata.longitude = spec.longitude;
  metadata.status_name = domain::kCesStatusSuccess;
  metadata.inverters.push_back(domain::CesInverter{spec.inverter.rcpn, spec.inverter.model, spec.inverter.rated_power_w,
                                                   spec.inverter.ac_pv_power_rating_kw});
  for (const auto& b : spec.batteries) {
    metadata.batteries.push_back(domain::CesBattery{b.rcpn, b.model, b.capacity_wh, b.rated_power_w});
  }
  for (const auto& link : spec.pv_links) metadata.pv_links.push_back(domain::CesPvLink{link.rcpn, link.rated_power_w});
  metadata.site_meter_id = spec.site_meter_id;
  return metadata;
}

std::string FleetSystemId(std::int64_t seed, int index, std::string_view prefix) {
  const std::string key = "pwrcell-fleet:" + std::to_string(seed) + ":" + std::to_string(index);
  HashStream stream(Fnv1a64(key));
  const std::uint64_t high = stream.Next();
  const std::uint64_t low = stream.Next();
  return std::string(prefix) + UuidFromBits(high, low);
}

}  // namespace pwrcell::fleet
