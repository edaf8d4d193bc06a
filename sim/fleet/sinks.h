// Where fleet-sim delivers its records.
//
// file:PATH  appends each record as a 4-byte big-endian length followed by the serialized
//            EnergyRecordSet (no partition key: the record's inverterId identifies the system).
// http(s)://host:port/v1/telemetry
//            POSTs {"records": [{"data": <base64>, "partitionKey": <systemId>}, ...]} in batches of
//            at most 500; any 2xx means the whole batch is stored. 5xx, 429 and transport errors
//            are retried with backoff (honouring Retry-After) until they succeed or the program is
//            told to stop; any other status rejects the batch, which is logged with its count.
// kinesis:STREAM
//            PutRecords to the Kinesis stream STREAM in batches of at most 500 records and 5 MiB,
//            partition key = systemId. Region, keys and endpoint come from the standard AWS
//            environment (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
//            AWS_ENDPOINT_URL[_KINESIS]). The entries of a partial failure and throttled calls are
//            sent again with backoff until they succeed or the program is told to stop; a record
//            Kinesis can never take (over 1 MiB) or a call refused for good is rejected.
// A sink never drops a record silently: every record ends up counted as delivered, rejected or
// undelivered (interrupted while retrying), and the program's exit code says whether all were
// delivered.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "sim/fleet/fleet.h"

namespace pwrcell::fleetsim {

inline constexpr std::size_t kMaxRecordsPerPost = 500;

struct SinkCounts {
  std::size_t delivered = 0;
  std::size_t rejected = 0;     // refused by the receiver (non-retryable answer)
  std::size_t undelivered = 0;  // still failing when the program was told to stop
};

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Delivers the records (blocking, retrying transient failures unless `stop` is set). Returns an
  // error when some were rejected or left undelivered; the counts say how many.
  virtual Status Deliver(std::span<const OutRecord> records) = 0;
  virtual const SinkCounts& counts() const = 0;
};

// Parses `file:PATH`, `http://...` / `https://...` or `kinesis:STREAM`; kInvalidArgument for
// anything else, a file that cannot be opened for appending, an AWS environment without keys or
// region, or a stream that cannot be described (missing, credentials refused). `stop` is polled while waiting to retry.
Result<std::unique_ptr<RecordSink>> MakeSink(const std::string& spec, const std::atomic<bool>& stop);

}  // namespace pwrcell::fleetsim
