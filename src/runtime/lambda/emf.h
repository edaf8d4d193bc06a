// Metrics of a Lambda function as CloudWatch embedded metric format (EMF) log lines: a function has
// no endpoint to scrape, so after each invocation the runtime writes every series that moved, one
// JSON line each, and CloudWatch Logs turns them into metrics (docs/LAMBDA.md "Metrics"):
//   {"_aws":{"Timestamp":<ms>,"CloudWatchMetrics":[{"Namespace":"pwrcell-adapter",
//    "Dimensions":[[<label names>]],"Metrics":[{"Name":<name>,"Unit":"Count"}]}]},
//    <label>:<value>,...,<name>:<value>}
// Counters are written as their increase since the previous call (CloudWatch sums them), gauges
// as their current value when it changed. Thread-compatible.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "common/time.h"

namespace pwrcell::runtime::lambda {

class EmfWriter {
 public:
  explicit EmfWriter(std::string name_space = "pwrcell-adapter") : namespace_(std::move(name_space)) {}

  // The lines for what moved in `metrics` since the previous call, stamped `now`.
  std::vector<std::string> Lines(const Metrics& metrics, Timestamp now);

 private:
  const std::string namespace_;
  std::map<std::pair<std::string, Labels>, double> last_;
};

}  // namespace pwrcell::runtime::lambda
