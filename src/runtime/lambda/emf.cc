#include "runtime/lambda/emf.h"

#include <nlohmann/json.hpp>

namespace pwrcell::runtime::lambda {

std::vector<std::string> EmfWriter::Lines(const Metrics& metrics, Timestamp now) {
  std::vector<std::string> lines;
  for (const Metrics::Sample& sample : metrics.Snapshot()) {
    auto key = std::make_pair(sample.name, sample.labels);
    const auto previous = last_.find(key);
    const double before = previous == last_.end() ? 0 : previous->second;
    const bool counter = sample.type == Metrics::Type::kCounter;
    if (previous != last_.end() && sample.value == before) continue;
    if (previous == last_.end() && counter && sample.value == 0) continue;
    nlohmann::json dimensions = nlohmann::json::array();
    nlohmann::json line = nlohmann::json::object();
    for (const auto& [label, value] : sample.labels) {
      dimensions.push_back(label);
      line[label] = value;
    }
    line["_aws"] = {{"Timestamp", ToUnixMillis(now)},
                    {"CloudWatchMetrics",
                     {{{"Namespace", namespace_},
                       {"Dimensions", nlohmann::json::array({dimensions})},
                       {"Metrics", {{{"Name", sample.name}, {"Unit", counter ? "Count" : "None"}}}}}}}};
    line[sample.name] = counter ? sample.value - before : sample.value;
    lines.push_back(line.dump());
    last_[std::move(key)] = sample.value;
  }
  return lines;
}

}  // namespace pwrcell::runtime::lambda
