#include "adapters/http/retrying_caller.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <utility>

namespace pwrcell::adapters {

Verdict VerdictFromTable(const HttpResponse& response, const ExchangeClass& table, const std::string& server_says) {
  Verdict verdict;
  verdict.outcome = table.outcome;
  verdict.credentials_rejected = table.code == StatusCode::kUnauthenticated;
  if (table.code != StatusCode::kOk) {
    verdict.status = Status(
        table.code, "HTTP " + std::to_string(response.status) + (server_says.empty() ? "" : " (" + server_says + ")"));
  }
  return verdict;
}

RetryingCaller::RetryingCaller(RetryingCallerOptions options, const ports::Clock& clock, const CallCounters& counters)
    : options_(std::move(options)),
      clock_(clock),
      counters_(counters),
      transport_(options_.transport),
      limiter_(options_.max_requests_per_second, options_.burst),
      backoff_(options_.backoff, options_.backoff_random, options_.backoff_sleep) {
  if (!transport_) {
    auto http = std::make_shared<const HttpClient>(options_.http);
    transport_ = [http](const HttpRequest& request) { return http->Exchange(request); };
  }
}

Status RetryingCaller::Redacted(const Status& status) const {
  if (status.ok()) return status;
  return Status(status.code(), redactor_.Redact(status.message()));
}

Result<HttpResponse> RetryingCaller::Call(const CallSpec& spec) {
  const std::string where = options_.service + " " + spec.operation;
  int retries = 0;
  bool renewed = false;
  for (;;) {
    auto request = spec.build();
    if (!request.ok()) return Redacted(request.status());

    limiter_.Acquire();
    HttpExchange exchange = transport_(*request);
    const ExchangeClass table = ClassifyExchange(exchange.curl_code, exchange.response.status);
    Verdict verdict;
    if (!exchange.answered()) {
      verdict = {Status(table.code, std::move(exchange.error)), table.outcome, false};
    } else if (spec.judge) {
      verdict = spec.judge(exchange.response, table);
    } else {
      verdict = VerdictFromTable(exchange.response, table, "");
    }
    counters_.requests.Increment({spec.operation, verdict.outcome});
    if (verdict.status.ok()) return std::move(exchange.response);

    const Status failure = Redacted(verdict.status.WithContext(where));
    if (verdict.credentials_rejected && spec.renew_credentials) {
      // `renewed` here means the renewed credentials were sent and rejected as well.
      const bool rejected_after_renewal = renewed;
      if (!renewed) {
        renewed = true;
        spdlog::info("{}; renewing the credentials", failure.ToString());
        auto renewal = spec.renew_credentials();
        if (!renewal.ok()) return Redacted(renewal.status());
        if (*renewal) continue;  // not a retry: no backoff, not counted
      }
      const std::string message = where + ": " + spec.credentials + " was rejected" +
                                  (rejected_after_renewal ? " again after renewing it" : "") + " (" +
                                  verdict.status.message() + ")";
      const Status rejected = Redacted(UnauthenticatedError(message));
      spdlog::error("{}; not retrying: check the account and the secret", rejected.message());
      return rejected;
    }
    if (!IsRetryable(failure.code())) return failure;

    const std::optional<Duration> retry_after =
        exchange.answered() ? exchange.response.RetryAfter(clock_.Now()) : std::nullopt;
    if (backoff_.TooLong(retry_after)) {
      spdlog::warn("{}: server asks to wait {} ms, more than {} ms; giving up for now", where, retry_after->count(),
                   backoff_.policy().max_retry_after.count());
      return failure;
    }
    if (retries >= options_.max_retries) {
      spdlog::warn("{} (gave up after {} retries)", failure.ToString(), retries);
      return failure.WithContext("after " + std::to_string(retries) + " retries");
    }
    ++retries;
    counters_.retries.Increment({spec.operation});
    const Duration delay = backoff_.Delay(retries, retry_after);
    spdlog::warn("{}; retry {}/{} in {} ms", failure.ToString(), retries, options_.max_retries, delay.count());
    backoff_.SleepFor(delay);
  }
}

}  // namespace pwrcell::adapters
