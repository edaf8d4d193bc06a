// The events AWS hands a Lambda function, as the event source mappings and EventBridge send them,
// and the answers they take back (docs/LAMBDA.md "The runtime"):
// - Kinesis: {"Records": [{"kinesis": {"data": <base64>, "partitionKey", "sequenceNumber", ...},
//   "eventID": "shardId-...:<seq>", "eventSourceARN", ...}]}; answered with
//   {"batchItemFailures": [{"itemIdentifier": <sequenceNumber>}]}: the first record that failed
//   transiently (the mapping retries from there; everything before it is done).
// - SQS: {"Records": [{"messageId", "receiptHandle", "body", "attributes":
//   {"ApproximateReceiveCount", "SentTimestamp", ...}, "messageAttributes": {<name>: {"stringValue",
//   "dataType"}}, "eventSourceARN": "arn:aws:sqs:<region>:<account>:<queue>", ...}]}; answered with
//   {"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}: the messages to deliver again.
// - EventBridge scheduled events: {"detail-type": "Scheduled Event", "source": "aws.events", ...}.
// Parsing is strict about what the handlers need (a missing or mistyped field is kInvalidArgument
// naming it and the record's index) and ignores everything else. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pwrcell::runtime::lambda {

struct KinesisEventRecord {
  std::string data;             // the record's bytes (base64-decoded)
  bool data_is_base64 = true;   // false: `data` was not valid base64 (kept as the text; a poison record)
  std::string sequence_number;  // kinesis.sequenceNumber: the batchItemFailures identifier
  std::string partition_key;
  std::string event_id;  // "shardId-...:<seq>", for logs
};

struct SqsEventRecord {
  std::string message_id;
  std::string receipt_handle;
  std::string body;        // SQS's text, as sent
  std::string encoding;    // the "pwrcell-encoding" message attribute ("" when absent)
  std::string queue_name;  // the last part of eventSourceARN
  int receive_count = 1;   // attributes.ApproximateReceiveCount
  Timestamp sent_at{};     // attributes.SentTimestamp
};

// kInvalidArgument when the event is not JSON, has no "Records" array, or a record lacks a field
// the handler needs (named, with the record's index).
Result<std::vector<KinesisEventRecord>> ParseKinesisEvent(std::string_view event);
Result<std::vector<SqsEventRecord>> ParseSqsEvent(std::string_view event);

// Checks that the event is an EventBridge scheduled event (or a test invocation's "{}"):
// kInvalidArgument naming what it is instead (a Kinesis or SQS event sent to a scheduled handler).
Status CheckScheduledEvent(std::string_view event);

// {"batchItemFailures": [{"itemIdentifier": id}, ...]}.
std::string BatchItemFailures(const std::vector<std::string>& identifiers);

// The queue name of an SQS ARN "arn:aws:sqs:<region>:<account>:<name>" (the ARN itself when it has
// no ':').
std::string QueueNameOfArn(std::string_view arn);

}  // namespace pwrcell::runtime::lambda
