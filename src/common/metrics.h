// A small metrics registry rendered as Prometheus text (the admin server's /metrics).
//
// Counters only go up; gauges are set. A series is a metric name plus labels, e.g.
//   metrics.Increment("pwrcell_records_total", {{"outcome", "decoded"}});
// Names and help texts are registered on first use via Describe() (optional: an undescribed
// metric renders without HELP). Label values are escaped on rendering. Never put a secret in a
// label value.
//
// Thread-safe: one mutex around a sorted map; cheap enough for per-record counting (a few
// hundred nanoseconds) and rendering sorts nothing at scrape time.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pwrcell {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge };

  // HELP text and TYPE of a metric family; a second call for the same name is ignored.
  void Describe(const std::string& name, Type type, std::string help);

  void Increment(const std::string& name, const Labels& labels = {}, double by = 1);
  void Set(const std::string& name, const Labels& labels, double value);
  // Drops every series of a gauge family (before re-setting a set of gauges whose label values
  // may disappear, e.g. devices by remote_state).
  void ClearFamily(const std::string& name);

  // Current value of one series; 0 when it was never touched (tests, the demo summary).
  double Value(const std::string& name, const Labels& labels = {}) const;
  // Sum over every series of a family.
  double Sum(const std::string& name) const;

  // Prometheus text exposition format 0.0.4.
  std::string RenderPrometheus() const;

 private:
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::map<Labels, double> series;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

}  // namespace pwrcell
