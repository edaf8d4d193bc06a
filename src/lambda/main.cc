// `bootstrap`: the adapter's processes as AWS Lambda functions (custom runtime, provided.al2023),
// one executable for every function, `_HANDLER` choosing which (docs/LAMBDA.md). A thin
// composition root: runtime/lambda wires the same processes, clients and store `serve` uses.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "common/logging.h"
#include "config/config.h"
#include "runtime/lambda/bootstrap.h"

int main() {
  // stdout carries the metrics (EMF lines); the logs go to stderr, plain (CloudWatch Logs stamps
  // each line itself).
  auto logger = spdlog::stderr_logger_mt("bootstrap");
  // One line per log call whatever a logged value holds (common/logging.h).
  logger->set_formatter(pwrcell::MakeEscapingFormatter("[%l] %v"));
  spdlog::set_default_logger(logger);
  std::ios::sync_with_stdio(false);
  return pwrcell::runtime::lambda::RunBootstrap(pwrcell::config::ProcessEnvironment(), std::cout);
}
