// The Amazon Data Firehose HTTP endpoint delivery format, protocol version 1.0 (AWS: "HTTP
// endpoint delivery request and response specifications", Amazon Data Firehose developer guide).
//
// Request body (Content-Type: application/json, optionally Content-Encoding: gzip):
//   {"requestId": "<guid>", "timestamp": <ms since epoch>, "records": [{"data": "<base64>"}, ...]}
// with the same request id in the X-Amz-Firehose-Request-Id header and the stream's access key in
// X-Amz-Firehose-Access-Key. Response body, for every status (Content-Type: application/json, not
// compressed, under 1 MiB):
//   {"requestId": "<the request's id>", "timestamp": <ms since epoch>[, "errorMessage": "..."]}
// Firehose counts only 200 as delivered; it retries every other status (with the same request
// id) until the stream's retry duration runs out and then backs the batch up to S3, except 413,
// which it treats as a permanent failure and does not back up.
//
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace pwrcell::runtime::http {

inline constexpr char kFirehoseRequestIdHeader[] = "X-Amz-Firehose-Request-Id";
inline constexpr char kFirehoseAccessKeyHeader[] = "X-Amz-Firehose-Access-Key";

struct FirehoseDelivery {
  std::string request_id;
  std::vector<std::string> records;  // each record's data, base64-decoded, in request order
};

// The delivery in `body` (decompressed). Errors (kInvalidArgument, saying which part is wrong):
// not JSON; not an object; "requestId" missing or not a string; "timestamp" present but not a
// number; "records" missing or not an array; an entry not an object; its "data" missing, not a
// string or not valid base64 (Firehose always sends valid base64: a record that is not is a
// corrupted body, so the whole request is refused and nothing of it stored).
Result<FirehoseDelivery> ParseFirehoseDelivery(std::string_view body);

// The response body: {"requestId", "timestamp"} and, when `error_message` is not empty,
// "errorMessage" (cut to 4,096 bytes; AWS allows under 8,192).
nlohmann::json FirehoseAnswer(std::string_view request_id, std::int64_t timestamp_ms,
                              std::string_view error_message = {});

}  // namespace pwrcell::runtime::http
