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
//     200 {"accepted": N, "rejected": [{"index": i, "error": "..."}], "rejected_count": R}
//   (also when N is 0); "rejected" lists the first 100 rejected records only and
//   "rejected_count" counts them all, so the answer stays small whatever the request (a 5 MiB
//   body of 436,905 empty records was once answered with 17 MB). A sink failure claims nothing: a retryable Status
//   answers 503 with `Retry-After: 1`, any other 500, both {"error": "..."}; the client sends the whole request again
//   (records are idempotent downstream, so what the sink stored before failing may be stored twice).
//
//   Other answers, all {"error": "..."}: 413 for a body over telemetry.max_body_bytes (declared
//   or, for chunked bodies, as received, or once decompressed) or a JSON body of more than
//   telemetry.max_records_per_request records (checked before any record is decoded; nothing is
//   stored; counted in pwrcell_http_refused_total{server="ingest", reason="too_many_records"});
//   431, 400 for the header limits and framing of listener.h (headers over 16 KiB in total, more
//   than one Content-Length, Content-Length with Transfer-Encoding); 400 for a body of neither shape
//   (invalid JSON, no "records" array, an entry that is not an object, "data" or "partitionKey"
//   not a string), a corrupt gzip body or one that could not be read; 415 for any other
//   Content-Type or a Content-Encoding other than identity or gzip (the precise status, and it
//   tells a misconfigured client what to fix); 401 (with WWW-Authenticate) without the access key;
//   405 for other methods on /v1/telemetry; 404 elsewhere; 503 with Retry-After while stopping.
//
//   Access key (telemetry.access_key_secret, optional): when set, a request must carry the key
//   of that secret ({"api_key": "..."}, access_key.h) as `X-Api-Key: <key>` or
//   `Authorization: Bearer <key>`; without it, or with another key, it is answered 401 and
//   nothing of it is read. When not set the endpoint is open, as it always was.
//
//   Content-Encoding: gzip (both paths): the body is decompressed first, and must fit in
//   telemetry.max_body_bytes once decompressed too (413 otherwise, without inflating further), so
//   a compressed body is accepted exactly when its uncompressed form would be.
//
//   POST /v1/firehose (Amazon Data Firehose HTTP endpoint delivery, firehose.h): enabled by
//   telemetry.firehose_access_key_secret, answered 404 while that is not set. The delivery's
//   X-Amz-Firehose-Access-Key must be the key of that secret (compared in constant time, never
//   logged), else 401 and nothing of it is read. Each record's data is one EnergyRecordSet in
//   protobuf, decoded by domain::DecodeRecordSet and stored through the same RecordSink, and the
//   answer 200 {"requestId", "timestamp"} comes only once the good records are stored. Every
//   answer, errors included, has the Firehose shape {"requestId", "timestamp", "errorMessage"}:
//   400 for a body that is not a delivery (invalid JSON, wrong shape, invalid base64: nothing of
//   it is stored, Firehose retries, then backs the batch up to S3); 413 over max_body_bytes
//   (which Firehose does NOT retry or back up: size max_body_bytes above the stream's buffer);
//   415 for an encoding other than gzip; 503 with Retry-After / 500 when the sink fails (Firehose
//   retries the whole batch; records are idempotent downstream). A record that is not a valid
//   EnergyRecordSet is treated as on /v1/telemetry: rejected alone, counted
//   (pwrcell_records_total{outcome="rejected"}) and logged with the request id and its index,
//   while the others are stored and the delivery answered 200; answering an error instead would
//   make Firehose send the same poison record again until its retry duration ends. The request
//   id (X-Amz-Firehose-Request-Id) is logged for every delivery.
//
// TLS (telemetry.tls_cert_file and tls_key_file): the listener serves HTTPS only, TLS 1.2+.
//
// Connections (listener.h): an event loop on 2 threads holds up to 10,000 connections (at the
// cap the one idle longest is closed to make room for a new one); an idle one is closed after
// 60 s, a request whose headers take over 10 s or whose body takes over 60 s is cut. The body is
// read in place (Request::body, never copied; JSON parsed without a copy), and a handler thread
// keeps no parser buffers grown by a body over 1 MiB. /v1/firehose has no record cap: it is
// authenticated, answers a constant-size body, and Firehose would drop a batch answered 413. Handlers run on 8 worker
// threads once their request has arrived in full.
//
// Metrics (IngestMetrics, declared at construction):
//   pwrcell_ingest_requests_total{status="200|400|405|413|415|500|503|..."}  every response;
//   pwrcell_ingest_firehose_requests_total{status}  the responses to POST /v1/firehose;
//   pwrcell_ingest_refused_total{endpoint="telemetry|firehose", reason="missing_key|wrong_key"}
//     requests refused 401 for their access key;
//   pwrcell_records_total{outcome="received"}  records offered in well-formed bodies;
//   pwrcell_records_total{outcome="rejected"}  records refused at ingest (base64, decoding);
//   pwrcell_http_refused_total{server="ingest", reason}  limit refusals (listener.h).
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
#include "ports/secret_store.h"

namespace pwrcell::runtime::http {

class Listener;
class AccessKey;

// Stores accepted records durably (serve: the SQLite telemetry queue) and returns OK only once
// all of them are stored. Each element is the bytes of one serialized EnergyRecordSet that
// domain::DecodeRecordSet accepted, in request order. Called only with a non-empty vector.
using RecordSink = std::function<Status(const std::vector<std::string>& records)>;

// The ingest endpoint's metrics, declared once (common/metrics.h).
struct IngestMetrics {
  explicit IngestMetrics(Metrics* registry);
  Counter<1> requests;           // {status}
  Counter<1> firehose_requests;  // {status}
  Counter<2> refused;            // {endpoint, reason}
  Counter<1> records;            // {outcome}
};

class IngestServer {
 public:
  // `config.listen` is bound by Start(); `config.max_body_bytes` caps request bodies. `metrics`
  // must outlive the server, and so must `secrets`, which is needed (non-null) only when the
  // configuration names an access key secret.
  IngestServer(config::TelemetryConfig config, RecordSink sink, Metrics& metrics,
               ports::SecretStore* secrets = nullptr);
  ~IngestServer();  // Stop()s
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  // Reads the access key secrets and TLS files, binds the listen address and serves on a thread
  // of its own. Errors: kUnavailable "cannot listen on 127.0.0.1:8070: address in use" (or
  // another reason); kFailedPrecondition when already started or when a secret is configured
  // without a SecretStore; the SecretStore's error, or kInvalidArgument for a secret of the
  // wrong shape, naming the key and the secret id; kNotFound / kPermissionDenied /
  // kInvalidArgument for a TLS file that cannot be read or that libmicrohttpd refuses, naming it.
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
  ports::SecretStore* secrets_;
  // Set when configured, before Start() serves; read-only afterwards.
  std::unique_ptr<AccessKey> access_key_;
  std::unique_ptr<AccessKey> firehose_access_key_;
  std::unique_ptr<Listener> listener_;
};

}  // namespace pwrcell::runtime::http
