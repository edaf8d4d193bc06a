"""Partial batch failures of the Lambda functions (docs/LAMBDA.md "The runtime"), through the event
source mappings on moto:

- Kinesis -> telemetry_processor: a batch [poison, r1, r2] (poison: bytes that are not an
  EnergyRecordSet) while the device table is unreachable (DynamoDB's endpoint switched off for a
  moment): the answer names r1's sequence number (the first record that failed transiently), never
  the poison record; once DynamoDB is back the mapping's retry from r1 processes r1 and r2 (at
  least once); the poison record is counted once and nothing is handed over again after that (no
  loop, nothing given up).
- SQS -> pwrcell_gateway: a batch [undecodable, get_metadata] while the device table is
  unreachable: the undecodable message goes to the queue's dead-letter queue (not reported), the
  get_metadata one is reported by its messageId, and is handled once DynamoDB is back.
"""

import json
import time
import unittest
import urllib.parse

import lambda_e2e  # noqa: F401 - the e2e harness in Lambda mode
from harness import Stack, live_scenario, metric, wait_for
from records import encode_record
from tcp_switch import TcpSwitch

POISON = b"\x08\x96\x01 not an EnergyRecordSet \xff\xfe"


def unknown_record(rcpn, ts):
    return encode_record(f'inverterId: "{rcpn}" energyRecord {{ currentTimestamp: {ts} inverterState: 2080 channel '
                         f'{{ channel: 2 channelType: INVERTER_OUTPUT deviceId: "{rcpn}" realPower_W: 100 }} }}')


class BatchFailuresTest(unittest.TestCase):
    def stack_with(self, function):
        """A stack with one function whose DynamoDB endpoint goes through a switch."""
        stack = Stack(self, scenario=live_scenario(systems=1, seed=3), auto_commissioning=False).start(adapter=False)
        moto = urllib.parse.urlparse(stack.moto_url)
        switch = TcpSwitch(moto.hostname, moto.port)
        self.addCleanup(switch.close)
        stack.lambda_options = {"only": {function},
                                "function_env": {function: {"AWS_ENDPOINT_URL_DYNAMODB": switch.url}}}
        stack.start_adapter()
        return stack, switch, stack.adapter.deployment

    def test_kinesis_poison_and_transient_failure(self):
        started = time.monotonic()
        stack, switch, deployment = self.stack_with("TelemetryProcessorFunction")
        mapping = deployment.mappings["TelemetryProcessorFunction"]
        kinesis = stack.boto3("kinesis")
        stream = stack.aws_names["telemetry_stream"]

        def put(blob):
            answer = kinesis.put_record(StreamName=stream, Data=blob, PartitionKey="one-shard")
            return answer["SequenceNumber"]

        def records(outcome):
            return metric(stack.metrics(), "pwrcell_telemetry_records_total", outcome=outcome)

        # Warm up (the store is opened by the first invocation, with DynamoDB reachable).
        put(unknown_record("00AAAAAAAA01", 1795000000))
        wait_for(lambda: records("unmatched") >= 1, "the first record processed (unmatched)")

        switch.set(False)
        poison = put(POISON)
        r1 = put(unknown_record("00AAAAAAAA02", 1795000001))
        r2 = put(unknown_record("00AAAAAAAA03", 1795000002))

        def failed_at_r1():
            for _, sequence, ok, payload in list(mapping.answers):
                if ok and sequence[:3] == [poison, r1, r2] and payload.get("batchItemFailures"):
                    return payload
            return None

        answer = wait_for(failed_at_r1, "the batch [poison, r1, r2] answered with a failure", 30)
        self.assertEqual(answer, {"batchItemFailures": [{"itemIdentifier": r1}]},
                         "the first record that failed transiently, not the poison one")
        time.sleep(1)  # a few retries from r1 while DynamoDB is still away
        switch.set(True)
        wait_for(lambda: records("unmatched") >= 3, "r1 and r2 processed after DynamoDB came back", 30)

        # Nothing loops: once done, the mapping hands nothing over again.
        time.sleep(1.5)
        invocations = mapping.invocations
        time.sleep(2)
        self.assertEqual(mapping.invocations, invocations, "no invocation after everything was processed")
        self.assertEqual(mapping.on_failure, [])
        self.assertEqual(records("undecodable"), 1, "the poison record counted once (retries start after it)")
        # At least once: r1 and r2 were processed (the warm-up record is the third). A record
        # after the reported one can have been processed in the invocation that reported r1 too
        # (the processor handles a chunk of records at once): it is then processed again on the
        # retry from r1, which the mapping's semantics allow.
        duplicates = records("unmatched") - 3
        self.assertGreaterEqual(duplicates, 0)
        self.assertLessEqual(duplicates, len([a for a in mapping.answers if a[1] and a[1][0] == r1]))
        reported = {item["itemIdentifier"] for _, _, ok, payload in mapping.answers if ok
                    for item in payload.get("batchItemFailures", [])}
        self.assertNotIn(poison, reported)
        self.assertTrue(reported <= {r1, r2}, reported)
        retries_from_r1 = [s for _, s, ok, _ in mapping.answers if s and s[0] == r1]
        self.assertGreaterEqual(len(retries_from_r1), 1, "retried from r1")
        self.assertGreater(switch.refused, 0, "DynamoDB was unreachable for a moment")
        print(f"\n{len(mapping.answers)} invocations, {len(retries_from_r1)} from r1, {duplicates:.0f} record(s) "
              f"processed twice; {time.monotonic() - started:.1f} s")

    def test_sqs_undecodable_to_dlq_and_transient_reported(self):
        stack, switch, deployment = self.stack_with("PwrcellGatewayFunction")
        mapping = deployment.mappings["PwrcellGatewayFunction"]
        sqs = stack.boto3("sqs")
        queue = sqs.get_queue_url(QueueName=stack.aws_names["ces_queue"])["QueueUrl"]
        dlq = sqs.get_queue_url(QueueName=stack.aws_names["ces_queue"] + "-dlq")["QueueUrl"]

        def items(outcome):
            return metric(stack.metrics(), "pwrcell_lambda_batch_items_total", handler="pwrcell_gateway",
                          outcome=outcome)

        # Warm up: a get_metadata for a system the device table does not hold (dropped, done).
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"op": "get_metadata", "remote_id": "warm-up"}))
        wait_for(lambda: items("done") >= 1, "the warm-up message handled")

        switch.set(False)
        sent = sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": "bad", "MessageBody": "this is not a CES request"},
            {"Id": "meta", "MessageBody": json.dumps({"op": "get_metadata", "remote_id": "not-registered-0001"})}])
        ids = {e["Id"]: e["MessageId"] for e in sent["Successful"]}

        def both_answered():
            for message_ids, ok, payload in list(mapping.answers):
                if set(message_ids) == set(ids.values()):
                    return (ok, payload)
            return None

        ok, answer = wait_for(both_answered, "the batch [undecodable, get_metadata] answered", 30)
        self.assertTrue(ok, answer)
        self.assertEqual(answer, {"batchItemFailures": [{"itemIdentifier": ids["meta"]}]},
                         "only the transient failure is reported, by messageId")

        def dead_letters():
            got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                      VisibilityTimeout=0)
            return [m["Body"] for m in got.get("Messages", [])]

        self.assertEqual(wait_for(dead_letters, "the undecodable message in the DLQ", 10),
                         ["this is not a CES request"])
        self.assertEqual(items("dead_letter"), 1)
        switch.set(True)
        wait_for(lambda: items("done") >= 2, "the get_metadata message handled once DynamoDB is back", 40)

        def queue_empty():
            attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            return all(int(v) == 0 for v in attributes.values())

        wait_for(queue_empty, "the CES queue empty (every message deleted)", 20)
        self.assertEqual(dead_letters(), ["this is not a CES request"], "nothing else dead-lettered")
        self.assertEqual(items("dead_letter"), 1)


if __name__ == "__main__":
    unittest.main()
