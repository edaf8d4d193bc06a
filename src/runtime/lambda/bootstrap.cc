#include "runtime/lambda/bootstrap.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>  // setenv

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "adapters/http/http_client.h"
#include "adapters/system/system_clock.h"
#include "runtime/lambda/emf.h"
#include "runtime/lambda/functions.h"
#include "runtime/lambda/runtime_api.h"

namespace pwrcell::runtime::lambda {
namespace {

// How many times in a row /next may fail before the process gives up (Lambda then starts a new
// one): a runtime API that stays away means the environment is being shut down.
constexpr int kMaxNextFailures = 5;

LambdaError ErrorOf(const Status& status) {
  return {"Pwrcell." + std::string(StatusCodeName(status.code())), status.message()};
}

// The environment with the Lambda defaults: the AWS backends unless the environment says otherwise.
config::Environment WithLambdaDefaults(const config::Environment& environment) {
  return config::Environment(
      [environment](const std::string& name) -> std::optional<std::string> {
        auto value = environment(name);
        if (value) return value;
        if (name == "PWRCELL_BACKEND_KIND" || name == "PWRCELL_SECRETS_BACKEND") return "aws";
        return std::nullopt;
      },
      [environment] { return environment.Names(); });
}

Result<config::Config> LoadConfig(const config::Environment& environment) {
  const config::Environment lambda_environment = WithLambdaDefaults(environment);
  if (auto path = environment("PWRCELL_CONFIG"); path && !path->empty()) {
    return config::LoadConfigFile(*path, lambda_environment);
  }
  return config::LoadConfigString("", "the environment", lambda_environment);
}

}  // namespace

int RunBootstrap(const config::Environment& environment, std::ostream& metrics_out) {
  const auto endpoint = environment("AWS_LAMBDA_RUNTIME_API");
  if (!endpoint || endpoint->empty()) {
    spdlog::critical(
        "bootstrap: AWS_LAMBDA_RUNTIME_API is not set (this program runs inside AWS Lambda, or under a "
        "stand-in of its runtime API)");
    return 1;
  }
  const adapters::HttpClient http;
  const RuntimeApi api(*endpoint, http);
  const adapters::SystemClock clock;

  std::unique_ptr<Function> function;
  {
    Status failed;
    auto handler = ParseHandler(environment("_HANDLER").value_or(""));
    if (!handler.ok()) failed = handler.status();
    Result<config::Config> config = failed.ok() ? LoadConfig(environment) : Result<config::Config>(failed);
    if (failed.ok() && !config.ok()) failed = config.status().WithContext("configuration");
    if (failed.ok()) {
      auto created = Function::Create(*config, *handler, clock);
      if (created.ok()) {
        function = std::move(*created);
      } else {
        failed = created.status().WithContext("configuration");
      }
    }
    if (!failed.ok()) {
      spdlog::critical("bootstrap: initialisation failed: {}", failed.ToString());
      if (Status posted = api.ReportInitError({"Runtime.InitError", failed.ToString()}); !posted.ok()) {
        spdlog::critical("bootstrap: {}", posted.ToString());
      }
      return 1;
    }
  }
  const std::string handler_name(HandlerName(function->handler()));
  spdlog::info("bootstrap: {} ready", handler_name);

  EmfWriter emf;
  int next_failures = 0;
  while (true) {
    auto invocation = api.Next();
    if (!invocation.ok()) {
      spdlog::error("bootstrap: {}", invocation.status().ToString());
      if (++next_failures >= kMaxNextFailures) return 1;
      std::this_thread::sleep_for(std::chrono::milliseconds(100) * next_failures);
      continue;
    }
    next_failures = 0;
    // The X-Ray trace header of this invocation, for anything that propagates it (Lambda's
    // documented contract for custom runtimes). Single-threaded here: nothing reads the environment
    // concurrently.
    if (invocation->trace_id.empty()) {
      unsetenv("_X_AMZN_TRACE_ID");  // NOLINT(concurrency-mt-unsafe)
    } else {
      setenv("_X_AMZN_TRACE_ID", invocation->trace_id.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
    }
    auto answer = function->Invoke(invocation->event, invocation->deadline);
    Status posted;
    if (answer.ok()) {
      posted = api.Respond(invocation->request_id, *answer);
    } else {
      spdlog::error("{}: invocation {} failed: {}", handler_name, invocation->request_id, answer.status().ToString());
      posted = api.ReportError(invocation->request_id, ErrorOf(answer.status()));
    }
    if (!posted.ok()) spdlog::error("bootstrap: {}", posted.ToString());
    for (const std::string& line : emf.Lines(function->metrics(), clock.Now())) metrics_out << line << '\n';
    metrics_out.flush();
  }
}

}  // namespace pwrcell::runtime::lambda
