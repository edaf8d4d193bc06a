// How POST /v1/telemetry reads a body once it is decompressed (ingest_server.h documents the
// endpoint): the JSON batch shape and the triage of records by domain::DecodeRecordSet. Apart from
// the server so that unit tests and fuzz/ingest_body_fuzzer.cc reach them without a listener.
// Pure; thread-safe (ParseJsonBatch keeps one simdjson parser per thread).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace pwrcell::runtime::http {

// One record as offered by the client: its bytes, or why they could not be had (invalid base64).
struct OfferedRecord {
  std::string bytes;
  std::string error;  // non-empty: rejected before decoding
};

// The records of a Kinesis-style JSON put {"records": [{"data": "<base64>", "partitionKey": "..."}]},
// in order. Errors (kInvalidArgument, the 400 answer's text): "body is not valid JSON: ...", "body
// must be a JSON object with a \"records\" array", "records[i] must be an object",
// "records[i].data must be a base64 string", "records[i].partitionKey must be a string". Invalid
// base64 is not a shape error: that record alone carries an error ("data: ..."). More than
// `max_records` records: kResourceExhausted "<n> records in one request, more than <max> ...",
// checked before any record is decoded. Parsed in place when `body` has SIMDJSON_PADDING spare
// capacity (the Listener reserves it), else simdjson copies it.
Result<std::vector<OfferedRecord>> ParseJsonBatch(const std::string& body, std::size_t max_records);

// The records that domain::DecodeRecordSet accepts, moved out of `offered` in order, and the
// others: the first 100 as [{"index", "error"}] (index into `offered`), all of them counted in
// `rejected_count`, so that the answer's size does not grow with the request's. A record larger
// than ports::kMaxQueueMessageBytes is rejected without decoding.
struct Triage {
  std::vector<std::string> accepted;
  nlohmann::json rejected = nlohmann::json::array();
  std::size_t rejected_count = 0;
};
Triage TriageRecords(std::vector<OfferedRecord>& offered);

}  // namespace pwrcell::runtime::http
