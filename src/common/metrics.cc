#include "common/metrics.h"

#include <cassert>
#include <cmath>
#include <cstdio>

namespace pwrcell {
namespace {

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

void Metrics::Declare(const std::string& name, Type type, std::string help, std::vector<std::string> label_names) {
  std::lock_guard lock(mutex_);
  Family& family = families_[name];
  if (family.declared) {
    // Two instances of one component declare the same family; two components declaring one name
    // differently is a bug (their series would mix label sets).
    assert(family.type == type && (label_names.empty() || family.label_names == label_names) &&
           "a metric declared twice with different types or labels");
    return;
  }
  family.declared = true;
  family.type = type;
  family.help = std::move(help);
  family.label_names = std::move(label_names);
}

void Metrics::Describe(const std::string& name, Type type, std::string help) {
  Declare(name, type, std::move(help), {});
}

void Metrics::Increment(const std::string& name, const Labels& labels, double by) {
  std::lock_guard lock(mutex_);
  families_[name].series[labels] += by;
}

void Metrics::Set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  auto& family = families_[name];
  family.type = Type::kGauge;
  family.series[labels] = value;
}

void Metrics::ClearFamily(const std::string& name) {
  std::lock_guard lock(mutex_);
  if (auto it = families_.find(name); it != families_.end()) it->second.series.clear();
}

double Metrics::Value(const std::string& name, const Labels& labels) const {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  auto series = it->second.series.find(labels);
  return series == it->second.series.end() ? 0 : series->second;
}

double Metrics::Sum(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  double sum = 0;
  for (const auto& [labels, value] : it->second.series) sum += value;
  return sum;
}

std::vector<Metrics::Declaration> Metrics::Declarations() const {
  std::lock_guard lock(mutex_);
  std::vector<Declaration> out;
  for (const auto& [name, family] : families_) {
    if (family.declared) out.push_back({name, family.type, family.help, family.label_names});
  }
  return out;
}

std::vector<Metrics::Sample> Metrics::Snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<Sample> out;
  for (const auto& [name, family] : families_) {
    for (const auto& [labels, value] : family.series) out.push_back({name, family.type, labels, value});
  }
  return out;
}

std::string Metrics::RenderPrometheus() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, family] : families_) {
    if (!family.help.empty()) out += "# HELP " + name + " " + family.help + "\n";
    out += "# TYPE " + name + (family.type == Type::kCounter ? " counter\n" : " gauge\n");
    for (const auto& [labels, value] : family.series) {
      out += name;
      if (!labels.empty()) {
        out += '{';
        bool first = true;
        for (const auto& [key, label_value] : labels) {
          if (!first) out += ',';
          first = false;
          out += key;
          out += "=\"";
          out += EscapeLabelValue(label_value);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      out += FormatValue(value);
      out += '\n';
    }
  }
  return out;
}

}  // namespace pwrcell
