"""Event source mappings over moto, the way AWS's pollers invoke a function (lambda_runtime.Function):

- KinesisMapping: one poller per shard (ParallelizationFactor 1), from TRIM_HORIZON; batches of up
  to BatchSize records in AWS's Kinesis event shape; ReportBatchItemFailures (retry from the
  lowest reported sequence number; a null/empty/unknown identifier fails the whole batch);
  BisectBatchOnFunctionError (an invocation error splits the batch in two); MaximumRetryAttempts
  (then the batch's description goes to the on-failure destination, `on_failure`, and the shard
  moves on). Records of one shard are handed over in order, one batch at a time.
- SqsMapping: MaximumConcurrency pollers, each ReceiveMessage up to BatchSize (10) with the
  queue's visibility timeout, AWS's SQS event shape; after the invocation the messages not named
  in batchItemFailures are deleted; an invocation error deletes none (they come back after the
  visibility timeout; the queue's redrive policy moves them to its DLQ after maxReceiveCount).
- Schedule: an EventBridge "Scheduled Event" every `interval_s` (the tests use seconds where
  EventBridge's minimum is a minute); an invocation error is recorded (EventBridge's asynchronous
  invocation would retry it twice, minutes later: not modelled, the next tick comes first).

Every mapping runs in daemon threads until stop(); `errors` lists what went wrong in the driver
itself (an AWS call that failed); `invocations` counts them; `contract` collects answers that break
the documented response shape (the test fails on them).
"""

import base64
import json
import threading
import time
import uuid
from datetime import datetime, timezone

ACCOUNT = "123456789012"


def _iso(ts=None):
    return datetime.fromtimestamp(ts if ts is not None else time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Mapping:
    def __init__(self, function, name):
        self.function = function
        self.name = name
        self.stop_event = threading.Event()
        self.threads = []
        self.lock = threading.Lock()
        self.errors = []        # driver errors (AWS calls)
        self.contract = []      # answers that break the documented response shape
        self.invocations = 0
        self.failed_invocations = 0

    def _thread(self, target, *args, name=None):
        thread = threading.Thread(target=self._guard, args=(target, *args), name=name or self.name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _guard(self, target, *args):
        while not self.stop_event.is_set():
            try:
                target(*args)
                return
            except Exception as error:  # noqa: BLE001 - a poller goes on, as AWS's does
                with self.lock:
                    self.errors.append(f"{type(error).__name__}: {error}")
                self.stop_event.wait(0.5)

    def _invoke(self, event):
        ok, payload = self.function.invoke(event)
        with self.lock:
            self.invocations += 1
            if not ok:
                self.failed_invocations += 1
        return ok, payload

    def _item_failures(self, payload, identifiers):
        """The identifiers reported failed, or None when the answer fails the whole batch
        (ReportBatchItemFailures: an empty / null list or an empty answer is success; a null,
        empty or unknown itemIdentifier, or a malformed answer, is a failure of every item)."""
        if payload is None or payload == {}:
            return []
        if not isinstance(payload, dict):
            self._contract(f"answer is not an object: {payload!r}")
            return None
        failures = payload.get("batchItemFailures")
        if failures is None:
            if payload:
                self._contract(f"answer without batchItemFailures: {payload!r}")
            return []
        if not isinstance(failures, list):
            self._contract(f"batchItemFailures is not a list: {payload!r}")
            return None
        out = []
        for item in failures:
            ident = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not isinstance(ident, str) or not ident or ident not in identifiers:
                self._contract(f"bad itemIdentifier {item!r} (batch {sorted(identifiers)[:3]}...)")
                return None
            out.append(ident)
        return out

    def _contract(self, text):
        with self.lock:
            self.contract.append(f"{self.name}: {text}")

    def stop(self):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(30)


class KinesisMapping(_Mapping):
    def __init__(self, function, kinesis, stream_name, region="us-east-1", batch_size=100, max_retries=3,
                 bisect=True, max_record_age_s=-1, poll_interval_s=0.25, retry_delay_s=0.1, name=None):
        super().__init__(function, name or f"kinesis:{stream_name}->{function.name}")
        self.kinesis = kinesis
        self.stream_name = stream_name
        self.region = region
        self.batch_size = batch_size
        self.max_retries = max_retries          # -1: no limit (the template's setting)
        self.max_record_age_s = max_record_age_s  # -1: no limit
        self.bisect = bisect
        self.poll_interval_s = poll_interval_s
        self.retry_delay_s = retry_delay_s
        description = kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]
        self.stream_arn = description["StreamARN"]
        self.on_failure = []     # on-failure destination records
        self.processed = {}      # shard id -> sequence number checkpointed (everything up to it done)
        self.delivered = 0       # records handed over (counting retries)
        self.answers = []        # (shard id, [sequence numbers handed over], ok, answer | error)
        self._shards = set()

    def start(self):
        self._thread(self._watch_shards, name=self.name + ":shards")
        return self

    def _watch_shards(self):
        while not self.stop_event.is_set():
            shards = self.kinesis.list_shards(StreamName=self.stream_name)["Shards"]
            for shard in shards:
                if shard["ShardId"] not in self._shards:
                    self._shards.add(shard["ShardId"])
                    self._thread(self._poll_shard, shard["ShardId"], name=f"{self.name}:{shard['ShardId']}")
            self.stop_event.wait(5)

    def _poll_shard(self, shard_id):
        """Reads the shard from TRIM_HORIZON (or after its checkpoint, when restarted after an
        error) and hands its records over in batches, in order."""
        after = self.processed.get(shard_id)
        if after is None:
            iterator = self.kinesis.get_shard_iterator(StreamName=self.stream_name, ShardId=shard_id,
                                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        else:
            iterator = self.kinesis.get_shard_iterator(StreamName=self.stream_name, ShardId=shard_id,
                                                       ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                                       StartingSequenceNumber=after)["ShardIterator"]
        buffer = []
        while not self.stop_event.is_set():
            if iterator is not None and len(buffer) < self.batch_size:
                answer = self.kinesis.get_records(ShardIterator=iterator, Limit=10000)
                buffer.extend(answer["Records"])
                iterator = answer.get("NextShardIterator")
            if not buffer:
                if iterator is None:
                    return  # a closed shard, read to its end
                self.stop_event.wait(self.poll_interval_s)
                continue
            batch, buffer = buffer[:self.batch_size], buffer[self.batch_size:]
            self._handle(shard_id, batch)

    def _event(self, shard_id, records):
        out = []
        for r in records:
            arrival = r["ApproximateArrivalTimestamp"]
            arrival = arrival.timestamp() if hasattr(arrival, "timestamp") else float(arrival)
            out.append({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["PartitionKey"],
                            "sequenceNumber": r["SequenceNumber"],
                            "data": base64.b64encode(bytes(r["Data"])).decode(),
                            "approximateArrivalTimestamp": arrival},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r['SequenceNumber']}", "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/lambda-role", "awsRegion": self.region,
                "eventSourceARN": self.stream_arn,
            })
        return {"Records": out}

    def _handle(self, shard_id, batch):
        """Hands `batch` over until every record is done or given up, in order. Each part carries
        its retry count: a retry after an invocation error or after a reported record counts; the
        halves of a bisected batch keep their parent's count."""
        pending = [(batch, 0)]
        while pending and not self.stop_event.is_set():
            part, retries = pending.pop(0)
            with self.lock:
                self.delivered += len(part)
            ok, payload = self._invoke(self._event(shard_id, part))
            sequence = [r["SequenceNumber"] for r in part]
            with self.lock:
                self.answers.append((shard_id, sequence, ok, payload))
            if ok:
                failed = self._item_failures(payload, set(sequence))
                if failed == []:
                    self.processed[shard_id] = sequence[-1]
                    continue
                if failed is not None:  # done up to the first reported record; retry from it
                    first = min(sequence.index(s) for s in failed)
                    if first > 0:
                        self.processed[shard_id] = sequence[first - 1]
                    if self._exhausted(part[first:], retries):
                        self._give_up(shard_id, part[first:], retries + 1, self._exhausted(part[first:], retries))
                    else:
                        pending.insert(0, (part[first:], retries + 1))
                        self.stop_event.wait(self.retry_delay_s)
                    continue
            # An invocation error, or an answer that fails the whole batch.
            if self.bisect and len(part) > 1:
                half = len(part) // 2
                pending[0:0] = [(part[:half], retries), (part[half:], retries)]
            elif self._exhausted(part, retries):
                self._give_up(shard_id, part, retries + 1, self._exhausted(part, retries))
            else:
                pending.insert(0, (part, retries + 1))
                self.stop_event.wait(self.retry_delay_s)

    def _exhausted(self, records, retries):
        """Why the mapping gives up on `records` after `retries` retries, or None."""
        if 0 <= self.max_retries <= retries:
            return "RetryAttemptsExhausted"
        if self.max_record_age_s >= 0:
            arrival = records[0]["ApproximateArrivalTimestamp"]
            arrival = arrival.timestamp() if hasattr(arrival, "timestamp") else float(arrival)
            if time.time() - arrival > self.max_record_age_s:
                return "RecordAgeExceeded"
        return None

    def _give_up(self, shard_id, records, attempts, condition):
        with self.lock:
            self.on_failure.append({
                "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": self.function.function_arn,
                                   "condition": condition, "approximateInvokeCount": attempts},
                "timestamp": _iso(),
                "KinesisBatchInfo": {"shardId": shard_id, "startSequenceNumber": records[0]["SequenceNumber"],
                                     "endSequenceNumber": records[-1]["SequenceNumber"], "batchSize": len(records),
                                     "streamArn": self.stream_arn},
            })
        self.processed[shard_id] = records[-1]["SequenceNumber"]


class SqsMapping(_Mapping):
    def __init__(self, function, sqs, queue_name, region="us-east-1", batch_size=10, max_concurrency=2,
                 wait_time_s=1, name=None):
        super().__init__(function, name or f"sqs:{queue_name}->{function.name}")
        self.sqs = sqs
        self.queue_name = queue_name
        self.region = region
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.wait_time_s = wait_time_s
        self.queue_url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        self.queue_arn = attributes["QueueArn"]
        self.visibility_timeout_s = int(attributes.get("VisibilityTimeout", 30))
        self.deleted = 0
        self.reported = []   # messageIds reported in batchItemFailures
        self.answers = []    # ([messageIds handed over], ok, answer | error)

    def start(self):
        for i in range(self.max_concurrency):
            self._thread(self._poll, name=f"{self.name}:{i}")
        return self

    @staticmethod
    def lambda_message_attributes(attributes):
        out = {}
        for name, value in (attributes or {}).items():
            entry = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
            if "StringValue" in value:
                entry["stringValue"] = value["StringValue"]
            if "BinaryValue" in value:
                entry["binaryValue"] = base64.b64encode(bytes(value["BinaryValue"])).decode()
            out[name] = entry
        return out

    def _event(self, messages):
        records = []
        for m in messages:
            attributes = m.get("Attributes", {})
            record = {
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": {k: attributes[k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                                          "ApproximateFirstReceiveTimestamp", "SequenceNumber",
                                                          "MessageGroupId", "MessageDeduplicationId")
                               if k in attributes},
                "messageAttributes": self.lambda_message_attributes(m.get("MessageAttributes")),
                "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn,
                "awsRegion": self.region,
            }
            if m.get("MD5OfMessageAttributes"):
                record["md5OfMessageAttributes"] = m["MD5OfMessageAttributes"]
            records.append(record)
        return {"Records": records}

    def _poll(self):
        while not self.stop_event.is_set():
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                              WaitTimeSeconds=self.wait_time_s,
                                              VisibilityTimeout=self.visibility_timeout_s,
                                              AttributeNames=["All"], MessageAttributeNames=["All"])
            messages = answer.get("Messages", [])
            if not messages:
                continue
            ok, payload = self._invoke(self._event(messages))
            with self.lock:
                self.answers.append(([m["MessageId"] for m in messages], ok, payload))
            if not ok:
                continue  # none deleted: visible again after the visibility timeout
            failed = self._item_failures(payload, {m["MessageId"] for m in messages})
            if failed is None:
                continue
            with self.lock:
                self.reported.extend(failed)
            done = [m for m in messages if m["MessageId"] not in failed]
            for i in range(0, len(done), 10):
                chunk = done[i:i + 10]
                result = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)])
                if result.get("Failed"):
                    with self.lock:
                        self.errors.append(f"DeleteMessageBatch: {result['Failed']}")
                with self.lock:
                    self.deleted += len(result.get("Successful", []))


class Schedule(_Mapping):
    def __init__(self, function, interval_s, rule_name=None, region="us-east-1", first_after_s=0.0):
        super().__init__(function, f"schedule:{rule_name or function.name}")
        self.interval_s = interval_s
        self.region = region
        self.first_after_s = first_after_s
        self.rule_arn = f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule_name or function.name + '-schedule'}"
        self.results = []   # (ok, payload | error)

    def event(self):
        return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                "account": ACCOUNT, "time": _iso(), "region": self.region, "resources": [self.rule_arn],
                "detail": {}}

    def start(self):
        self._thread(self._tick)
        return self

    def _tick(self):
        next_at = time.monotonic() + self.first_after_s
        while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval_s
            ok, payload = self._invoke(self.event())
            with self.lock:
                self.results.append((ok, payload))
            if ok and not (isinstance(payload, dict) and payload.get("ok") is True):
                self._contract(f"scheduled answer is not {{'handler', 'ok': true}}: {payload!r}")
            # A tick that took longer than the interval is not made up for (EventBridge would
            # have started another instance; one at a time is enough here).
            next_at = max(next_at, time.monotonic())
