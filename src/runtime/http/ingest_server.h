// The telemetry ingest endpoint of `pwrcell-adapter serve` (SPEC section 8: "telemetry from an
// HTTP ingest endpoint, records accepted only once stored").
//
//   POST /v1/telemetry
//     Content-Type: application/x-protobuf (or application/octet-stream)
//       the body is one serialized EnergyRecordSet (record index 0);
//     Content-Type: application/json
//       {"records": [{"data": "<base64 EnergyRecordSet>", "partitionKey": "<systemId>"}, ...]}
//       (the shape of a Kinesis PutRecords call; partitionKey is optional and only checked to be
//       a string: the record's inverterId identifies the system).
//
//   Each record must pass domain::DecodeRecordSet; one that does not (or whose base64 is
//   invalid) is rejected on its own and never stored. The others go to the RecordSink, and only
//   once it returned OK does the server answer
//     200 {"accepted": N, "rejected": [{"index": i, "error": "..."}]}
//   (also when N is 0). A sink failure claims nothing: a retryable Status answers 503 with
//   `Retry-After: 1`, any other 500, both {"error": "..."}; the client sends the whole request
//   again (records are idempotent downstream, so what the sink stored before failing may be
//   stored twice).
//
//   Other answers, all {"error": "..."}: 413 for a body over telemetry.max_body_bytes (declared
//   or, for chunked bodies, as received); 400 for a body of neither shape (invalid JSON, no
//   "records" array, an entry that is not an object, "data" or "partitionKey" not a string) or
//   one that could not be read; 415 for any other Content-Type or a Content-Encoding other than
//   identity (the precise status, and it tells a misconfigured client what to fix); 405 for
//   other methods on /v1/telemetry; 404 elsewhere; 503 with Retry-After while stopping.
//
// Connections (listener.h): an event loop on 2 threads holds up to 10,000 connections; an idle
// one is closed after 60 s, a request whose headers take over 10 s or whose body takes over
// 60 s is cut. Handlers run on 8 worker threads once their request has arrived in full.
//
// Metrics (IngestMetrics, declared at construction):
//   pwrcell_ingest_requests_total{status="200|400|405|413|415|500|503|..."}  every response;
//   pwrcell_records_total{outcome="received"}  records offered in well-formed bodies;
//   pwrcell_records_total{outcome="rejected"}  records refused at ingest (base64, decoding).
//
// Thread-safety: requests are handled on a pool of worker threads, so the sink is called
// concurrently and must be thread-safe. Start() and Stop() are for the owning thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/status.h"
#include "config/config.h"

namespace pwrcell::runtime::http {

class Listener;

// Stores accepted records durably (serve: the SQLite telemetry queue) and returns OK only once
// all of them are stored. Each element is the bytes of one serialized EnergyRecordSet that
// domain::DecodeRecordSet accepted, in request order. Called only with a non-empty vector.
using RecordSink = std::function<Status(const std::vector<std::string>& records)>;

// The ingest endpoint's metrics, declared once (common/metrics.h).
struct IngestMetrics {
  explicit IngestMetrics(Metrics* registry);
  Counter<1> requests;  // {status}
  Counter<1> records;   // {outcome}
};

class IngestServer {
 public:
  // `config.listen` is bound by Start(); `config.max_body_bytes` caps request bodies. `metrics`
  // must outlive the server.
  IngestServer(config::TelemetryConfig config, RecordSink sink, Metrics& metrics);
  ~IngestServer();  // Stop()s
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  // Binds the listen address and serves on a thread of its own. Errors: kUnavailable
  // "cannot listen on 127.0.0.1:8070: address in use" (or another reason); kFailedPrecondition
  // when already started.
  Status Start();

  // Stops accepting connections and returns once the requests in progress have been answered.
  // Idempotent.
  void Stop();

  // The bound port (the free port chosen for port 0); 0 before Start() succeeded.
  int port() const;

 private:
  config::TelemetryConfig config_;
  RecordSink sink_;
  const IngestMetrics metrics_;
  std::unique_ptr<Listener> listener_;
};

}  // namespace pwrcell::runtime::http
