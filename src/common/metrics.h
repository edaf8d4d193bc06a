// A small metrics registry rendered as Prometheus text (the admin server's /metrics), and the
// typed handles through which the code counts.
//
// Every metric is declared once, as a member of its component's metrics struct (Envoy's stats
// structs), with its name, help text and label names:
//
//   struct IngestMetrics {
//     explicit IngestMetrics(Metrics* registry)
//         : requests(registry, "pwrcell_ingest_requests_total", "Requests to ...", {"status"}) {}
//     Counter<1> requests;
//   };
//   metrics.requests.Increment({"200"});
//
// The struct is the only place the name appears; the number of label values is checked by the
// compiler. A handle bound to no registry (nullptr) counts nothing, so a component whose metrics
// are optional needs no null checks. Metrics::Declarations() lists what was declared (the
// README's metric list is checked against it by a test). Label values are escaped on rendering.
// Never put a secret in a label value.
//
// The string interface (Increment("pwrcell_x", {{"k", "v"}})) remains for reading values in tests
// and for code not yet converted; new code declares handles.
//
// Thread-safe: one mutex around a sorted map; cheap enough for per-record counting (a few
// hundred nanoseconds) and rendering sorts nothing at scrape time. Handles are immutable after
// construction and may be shared by threads; the registry must outlive them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pwrcell {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge };

  // What a family was declared with.
  struct Declaration {
    std::string name;
    Type type = Type::kCounter;
    std::string help;
    std::vector<std::string> label_names;
  };

  // Declares a family: type, HELP text and label names. A second declaration of the same name is
  // ignored (two components may share a registry and construct the same struct).
  void Declare(const std::string& name, Type type, std::string help, std::vector<std::string> label_names);
  // Declare without label names (the string interface, for code not yet converted).
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

  // Every declared family (Declare or Describe), sorted by name.
  std::vector<Declaration> Declarations() const;

  // Prometheus text exposition format 0.0.4.
  std::string RenderPrometheus() const;

  // One series and its value, for other renderings (the Lambda runtime's embedded metric format).
  struct Sample {
    std::string name;
    Type type = Type::kCounter;
    Labels labels;
    double value = 0;
  };
  // Every series, sorted by family name, then labels.
  std::vector<Sample> Snapshot() const;

 private:
  struct Family {
    Type type = Type::kCounter;
    bool declared = false;
    std::string help;
    std::vector<std::string> label_names;
    std::map<Labels, double> series;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Family> families_;
};

// The base of the typed handles: one family, declared on construction. `N` label names, given as
// string literals (they are kept as string_view); every use passes N values in the same order.
template <Metrics::Type kType, std::size_t N>
class MetricFamily {
 public:
  using LabelNames = std::array<std::string_view, N>;
  using LabelValues = std::array<std::string_view, N>;

  MetricFamily(Metrics* registry, std::string_view name, std::string_view help, LabelNames label_names = {})
      : registry_(registry), name_(name), label_names_(label_names) {
    if (registry_ != nullptr) {
      registry_->Declare(name_, kType, std::string(help),
                         std::vector<std::string>(label_names_.begin(), label_names_.end()));
    }
  }

  const std::string& name() const { return name_; }
  const LabelNames& label_names() const { return label_names_; }

  // The value of one series (0 when never touched or unbound); for tests and summaries.
  double Value(const LabelValues& values = {}) const {
    return registry_ == nullptr ? 0 : registry_->Value(name_, Bind(values));
  }
  double Sum() const { return registry_ == nullptr ? 0 : registry_->Sum(name_); }

 protected:
  void AddTo(const LabelValues& values, double by) const {
    if (registry_ != nullptr) registry_->Increment(name_, Bind(values), by);
  }
  void SetTo(const LabelValues& values, double value) const {
    if (registry_ != nullptr) registry_->Set(name_, Bind(values), value);
  }
  void ClearAll() const {
    if (registry_ != nullptr) registry_->ClearFamily(name_);
  }

 private:
  Labels Bind(const LabelValues& values) const {
    Labels labels;
    labels.reserve(N);
    for (std::size_t i = 0; i < N; ++i) labels.emplace_back(std::string(label_names_[i]), std::string(values[i]));
    return labels;
  }

  Metrics* registry_;
  std::string name_;
  LabelNames label_names_;
};

// A counter family with N labels: only goes up.
template <std::size_t N = 0>
class Counter : public MetricFamily<Metrics::Type::kCounter, N> {
 public:
  using Base = MetricFamily<Metrics::Type::kCounter, N>;
  using Base::Base;
  using typename Base::LabelValues;

  void Increment(const LabelValues& values, double by = 1) const requires(N > 0) { this->AddTo(values, by); }
  void Increment(double by = 1) const requires(N == 0) { this->AddTo({}, by); }
};

// A gauge family with N labels: set to a value (or counted up while it is rebuilt).
template <std::size_t N = 0>
class Gauge : public MetricFamily<Metrics::Type::kGauge, N> {
 public:
  using Base = MetricFamily<Metrics::Type::kGauge, N>;
  using Base::Base;
  using typename Base::LabelValues;

  void Set(const LabelValues& values, double value) const requires(N > 0) { this->SetTo(values, value); }
  void Set(double value) const requires(N == 0) { this->SetTo({}, value); }
  void Add(const LabelValues& values, double by = 1) const { this->AddTo(values, by); }
  // Drops every series (before re-setting gauges whose label values may disappear).
  void Clear() const { this->ClearAll(); }
};

}  // namespace pwrcell
