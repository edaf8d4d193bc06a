// Fuzzes what POST /v1/telemetry and POST /v1/firehose do with a body, without a server
// (runtime/http/ingest_body.h, firehose.h, gzip.h). The first byte picks the path, as the
// Content-Type and Content-Encoding headers would:
//   0: application/x-protobuf: the body is one record, triaged by DecodeRecordSet;
//   1: application/json: ParseJsonBatch, then the triage;
//   2: a Firehose delivery: ParseFirehoseDelivery, then the triage;
//   3: Content-Encoding gzip: GunzipBounded (64 KiB cap), then the JSON path.
// The answers built from the results (the 200 body, the Firehose answer) are dumped as the
// server dumps them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/http/firehose.h"
#include "runtime/http/gzip.h"
#include "runtime/http/ingest_body.h"

namespace {

using pwrcell::runtime::http::OfferedRecord;

// The default telemetry.max_records_per_request.
constexpr std::size_t kMaxRecords = 10000;

// As runtime/http/listener.cc's ReplyJson writes every answer.
std::string Dump(const nlohmann::json& answer) {
  return answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Triage(std::vector<OfferedRecord> offered) {
  const std::size_t count = offered.size();
  pwrcell::runtime::http::Triage triage = pwrcell::runtime::http::TriageRecords(offered);
  if (triage.accepted.size() + triage.rejected_count != count) std::abort();
  if (triage.rejected.size() > 100 || triage.rejected.size() > triage.rejected_count) std::abort();
  // The handler's 200 answer, dumped as ReplyJson does.
  const nlohmann::json answer = {{"accepted", triage.accepted.size()},
                                 {"rejected", std::move(triage.rejected)},
                                 {"rejected_count", triage.rejected_count}};
  (void)Dump(answer);
}

void Json(const std::string& body) {
  auto parsed = pwrcell::runtime::http::ParseJsonBatch(body, kMaxRecords);
  if (!parsed.ok()) {
    (void)Dump(nlohmann::json{{"error", parsed.status().message()}});
    return;
  }
  Triage(std::move(parsed).value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int path = data[0] % 4;
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (path) {
    case 0: {
      std::vector<OfferedRecord> offered;
      offered.push_back({std::move(body), ""});
      Triage(std::move(offered));
      break;
    }
    case 1:
      Json(body);
      break;
    case 2: {
      auto delivery = pwrcell::runtime::http::ParseFirehoseDelivery(body);
      if (!delivery.ok()) {
        (void)Dump(pwrcell::runtime::http::FirehoseAnswer("id", 0, delivery.status().message()));
        break;
      }
      std::vector<OfferedRecord> offered;
      for (std::string& record : delivery->records) offered.push_back({std::move(record), ""});
      Triage(std::move(offered));
      (void)Dump(pwrcell::runtime::http::FirehoseAnswer(delivery->request_id, 0));
      break;
    }
    default: {
      auto inflated = pwrcell::runtime::http::GunzipBounded(body, 64 * 1024);
      if (inflated.ok()) {
        if (inflated->size() > 64 * 1024) std::abort();
        Json(*inflated);
      }
      break;
    }
  }
  return 0;
}
