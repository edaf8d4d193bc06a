"""Tests of the Lambda harness itself (lambda_runtime.py, event_sources.py) against a fake custom
runtime (fake_bootstrap.py) and moto: the runtime API the way Lambda serves it (events, headers,
environment, errors, exits, timeouts, init errors, contract checks, concurrency, EMF), and the event
source mappings' batching, partial failures, bisection, retries, deletes and schedules."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from event_sources import KinesisMapping, Schedule, SqsMapping  # noqa: E402
from lambda_runtime import ContractViolation, Function, emf_samples  # noqa: E402

FAKE = [sys.executable, "-B", os.path.join(HERE, "fake_bootstrap.py")]
MOTO_FIXTURE = os.path.join(HERE, "..", "aws", "moto_fixture.py")


def wait_for(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.05)


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lambda-harness-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.state)

    def function(self, name="EchoFunction", handler="echo", concurrency=1, timeout_s=5.0, **variables):
        f = Function(name, handler, FAKE, self.dir, variables={"FAKE_STATE_DIR": self.state, **variables},
                     base_env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                               "AWS_SESSION_TOKEN": "testing"},
                     concurrency=concurrency, timeout_s=timeout_s)
        self.addCleanup(f.close)
        return f

    def lines(self, name):
        try:
            with open(os.path.join(self.state, name)) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


class RuntimeApiTest(Base):
    def test_event_headers_and_environment(self):
        f = self.function(MY_SETTING="42")
        before = time.time()
        ok, payload = f.invoke({"echo": [1, "two"]}, timeout_s=7)
        self.assertTrue(ok, payload)
        self.assertEqual(payload["echo"], [1, "two"])
        headers = {k.lower(): v for k, v in payload["headers"].items()}
        self.assertRegex(headers["lambda-runtime-aws-request-id"], r"^[0-9a-f-]{36}$")
        deadline = int(headers["lambda-runtime-deadline-ms"]) / 1000
        self.assertGreater(deadline, before + 6)
        self.assertLess(deadline, time.time() + 7.5)
        self.assertEqual(headers["lambda-runtime-invoked-function-arn"],
                         "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction")
        self.assertRegex(headers["lambda-runtime-trace-id"], r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=")
        env = payload["env"]
        self.assertRegex(env["AWS_LAMBDA_RUNTIME_API"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(env["_HANDLER"], "echo")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_NAME"], "EchoFunction")
        self.assertEqual(env["AWS_REGION"], "us-east-1")
        self.assertEqual(env["MY_SETTING"], "42")
        self.assertTrue(os.path.isdir(env["LAMBDA_TASK_ROOT"]))
        self.assertNotIn("HOME", env, "no inherited environment")
        self.assertEqual(len(f.init_durations), 1)
        # Warm: the same process answers the next one.
        ok, again = f.invoke({"echo": 2})
        self.assertTrue(ok)
        self.assertEqual(again["env"]["AWS_LAMBDA_RUNTIME_API"], env["AWS_LAMBDA_RUNTIME_API"])
        self.assertEqual(len(f.init_durations), 1)
        f.check()

    def test_error_exit_and_restart(self):
        f = self.function()
        ok, error = f.invoke({"fail": "it went wrong"})
        self.assertFalse(ok)
        self.assertEqual(error["errorType"], "Fake.Failure")
        self.assertEqual(error["errorMessage"], "it went wrong")
        ok, error = f.invoke({"exit": 7})
        self.assertFalse(ok)
        self.assertEqual(error["errorType"], "Runtime.ExitError")
        self.assertIn("exit status 7", error["errorMessage"])
        ok, payload = f.invoke({"echo": "after"})
        self.assertTrue(ok, payload)
        self.assertEqual(f.instances[0].starts, 2, "a cold start after the exit")
        self.assertEqual(len(f.init_durations), 2)
        f.check()

    def test_killed_mid_invocation_is_an_exit_error(self):
        f = self.function()
        results = []
        thread = threading.Thread(target=lambda: results.append(f.invoke({"sleep": 5, "echo": 1})))
        thread.start()
        wait_for(lambda: f.instances[0].running_invocation() is not None and
                 f.instances[0].running_invocation().delivered_at, "the invocation running")
        f.instances[0].kill()
        thread.join(10)
        ((ok, error),) = results
        self.assertFalse(ok)
        self.assertEqual(error["errorType"], "Runtime.ExitError")
        self.assertIn("signal: sigkill", error["errorMessage"])

    def test_deadline_kills_the_process(self):
        f = self.function(timeout_s=0.5)
        start = time.monotonic()
        ok, error = f.invoke({"sleep": 10, "echo": 1})
        elapsed = time.monotonic() - start
        self.assertFalse(ok)
        self.assertEqual(error["errorType"], "Sandbox.Timedout")
        self.assertLess(elapsed, 5)
        self.assertGreaterEqual(elapsed, 0.5)
        ok, payload = f.invoke({"echo": "next"})
        self.assertTrue(ok, payload)
        self.assertEqual(f.instances[0].starts, 2)

    def test_idle_process_is_frozen(self):
        f = self.function(FAKE_TICKER="1")
        self.assertTrue(f.invoke({"echo": 1})[0])
        time.sleep(0.3)
        frozen_at = len(self.lines("ticks"))
        time.sleep(0.5)
        self.assertLessEqual(len(self.lines("ticks")) - frozen_at, 1, "nothing runs between invocations")
        ok, _ = f.invoke({"sleep": 0.3, "echo": 2})
        self.assertTrue(ok)
        self.assertGreaterEqual(len(self.lines("ticks")) - frozen_at, 5, "it runs again during an invocation")
        wait_for(lambda: f.instances[0].sandbox.freezes >= 2, "frozen after each invocation")

    def test_settle_waits_for_the_running_invocations_metrics(self):
        f = self.function()
        f.invoke({"echo": 0})
        thread = threading.Thread(target=lambda: f.invoke({"sleep": 1.0, "echo": 1}))
        thread.start()
        wait_for(lambda: f.instances[0].running_invocation() is not None
                 and f.instances[0].running_invocation().delivered_at, "the invocation running")
        lines = len(f.emf)
        started = time.monotonic()
        f.settle()
        self.assertGreaterEqual(time.monotonic() - started, 0.5, "waited for the invocation")
        self.assertEqual(len(f.emf), lines + 1, "its EMF line collected when settle returns")
        thread.join(5)

    def test_init_error(self):
        f = self.function(FAKE_INIT_ERROR="1")
        ok, error = f.invoke({"echo": 1})
        self.assertFalse(ok)
        self.assertEqual(error["errorType"], "Runtime.InitFake")
        self.assertIn("FAKE_INIT_ERROR", error["errorMessage"])
        self.assertEqual(error["phase"], "init")
        self.assertEqual(f.init_durations, [], "never reached /next")
        f.check()

    def test_init_timeout(self):
        f = self.function(FAKE_INIT_SLEEP="5")
        f.init_timeout_s = 0.5
        ok, error = f.invoke({"echo": 1})
        self.assertFalse(ok)
        self.assertEqual(error["errorType"], "Sandbox.Timedout")
        self.assertEqual(error["phase"], "init")

    def test_contract_breaches_fail_loudly(self):
        f = self.function()
        with self.assertRaises(ContractViolation):
            f.invoke({"not_json": True})
        g = self.function(name="NoHeader")
        ok, error = g.invoke({"no_error_header": 1})
        self.assertFalse(ok)
        with self.assertRaisesRegex(ContractViolation, "Lambda-Runtime-Function-Error-Type"):
            g.check()

    def test_concurrency_and_emf(self):
        f = self.function(concurrency=3)
        results = []
        start = time.monotonic()
        threads = [threading.Thread(target=lambda i=i: results.append(f.invoke({"sleep": 1.0, "echo": i})))
                   for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        elapsed = time.monotonic() - start
        self.assertEqual(sorted(p["echo"] for ok, p in results if ok), [0, 1, 2])
        self.assertLess(elapsed, 2.5, "three instances at once")
        self.assertEqual(len({p["env"]["AWS_LAMBDA_RUNTIME_API"] for _, p in results}), 3)
        # Four on three instances: the fourth waits for a free one.
        f.invoke({"echo": 4})
        wait_for(lambda: len(f.emf) == 4, "four EMF lines")
        samples = emf_samples(f.emf)
        self.assertEqual(samples[("pwrcell_fake_records_total", frozenset({("handler", "echo")}))], 4.0)
        self.assertIn(samples[("pwrcell_fake_invocations", frozenset({("handler", "echo")}))], (1.0, 2.0))


BOOTSTRAP = os.path.join(os.path.abspath(os.environ.get("PWRCELL_BIN_DIR", os.path.join(HERE, "..", "..", "build",
                                                                                          "bin"))), "bootstrap")


@unittest.skipUnless(os.path.exists(BOOTSTRAP), "needs the real bootstrap (PWRCELL_BIN_DIR)")
class RealBootstrapContractTest(Base):
    """The real bootstrap's side of the runtime API where no AWS is needed: init errors (posted to
    /init/error, then exit) and an invocation error (JSON with errorMessage / errorType and the
    Lambda-Runtime-Function-Error-Type header; the process stays warm)."""

    VARIABLES = {"ConcertoRootUrl": "http://127.0.0.1:9", "CesRootUrl": "http://127.0.0.1:9",
                 "ConcertoCredentials": "arn:aws:secretsmanager:us-east-1:123456789012:secret:c",
                 "CesCredentials": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s",
                 "PWRCELL_AWS_DEVICE_TABLE": "devices", "PWRCELL_AWS_COORDINATION_TABLE": "coordination",
                 "PWRCELL_AWS_CONCERTO_QUEUE": "concerto", "PWRCELL_AWS_CONCERTO_TELEMETRY_QUEUE": "concerto-telemetry",
                 "PWRCELL_AWS_CES_QUEUE": "ces", "PWRCELL_AWS_TELEMETRY_STREAM": "telemetry"}

    def bootstrap(self, handler, **extra):
        f = Function("Real-" + handler, handler, BOOTSTRAP, self.dir, variables={**self.VARIABLES, **extra},
                     base_env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                               "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, timeout_s=20)
        self.addCleanup(f.close)
        return f

    def test_init_errors(self):
        for handler, extra, words in (("bogus", {}, "unknown handler"),
                                      ("liveness_sweep", {"PWRCELL_BACKEND_KIND": "embedded"}, "embedded")):
            f = self.bootstrap(handler, **extra)
            ok, error = f.invoke({})
            self.assertFalse(ok)
            self.assertEqual(error["phase"], "init", error)
            self.assertIn(words, error["errorMessage"])
            self.assertTrue(error["errorType"])
            self.assertEqual(f.init_durations, [])
            f.check()

    def test_invocation_error_keeps_the_process(self):
        f = self.bootstrap("liveness_sweep")
        event = {"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
        for _ in range(2):
            ok, error = f.invoke(event)
            self.assertFalse(ok)
            self.assertIn("127.0.0.1:9", error["errorMessage"], "the unreachable store named")
        self.assertEqual(f.instances[0].starts, 1, "an invocation error is not a process exit")
        f.check()


class EventSourcesTest(Base):
    @classmethod
    def setUpClass(cls):
        cls.moto_dir = tempfile.mkdtemp(prefix="lambda-harness-moto-")
        subprocess.run([sys.executable, MOTO_FIXTURE, "start", cls.moto_dir], check=True, capture_output=True,
                       timeout=90)
        with open(os.path.join(cls.moto_dir, "endpoint")) as f:
            cls.endpoint = f.read().strip()
        import boto3
        kw = dict(endpoint_url=cls.endpoint, region_name="us-east-1", aws_access_key_id="testing",
                  aws_secret_access_key="testing")
        cls.kinesis = boto3.client("kinesis", **kw)
        cls.sqs = boto3.client("sqs", **kw)

    @classmethod
    def tearDownClass(cls):
        subprocess.run([sys.executable, MOTO_FIXTURE, "stop", cls.moto_dir], capture_output=True, timeout=60)
        shutil.rmtree(cls.moto_dir, True)

    def stream(self, shards=1):
        name = "s-" + os.path.basename(self.dir).lower().replace("_", "-")
        self.kinesis.create_stream(StreamName=name, ShardCount=shards)
        return name

    def put(self, stream, payloads):
        for p in payloads:
            self.kinesis.put_record(StreamName=stream, Data=p.encode(), PartitionKey="k")

    def test_kinesis_batches_partial_failure_poison_and_crash(self):
        stream = self.stream()
        payloads = [f"ok:{i}" for i in range(7)] + ["poison", "transient:a"] + [f"ok:{i}" for i in range(7, 12)] + \
            ["crash:c"] + [f"ok:{i}" for i in range(12, 20)]
        self.put(stream, payloads)
        f = self.function(name="KinesisFunction", handler="telemetry_processor")
        mapping = KinesisMapping(f, self.kinesis, stream, batch_size=5, max_retries=3).start()
        self.addCleanup(mapping.stop)
        want = sorted(p for p in payloads if p != "poison")
        wait_for(lambda: sorted(self.lines("processed")) == want,
                 lambda: f"every record processed once: {self.lines('processed')} {mapping.errors}")
        time.sleep(0.5)
        mapping.stop()
        self.assertEqual(sorted(self.lines("processed")), want, "nothing processed twice")
        self.assertEqual(mapping.on_failure, [])
        self.assertEqual(mapping.contract, [])
        self.assertEqual(mapping.errors, [])
        # The event's shape, as AWS sends it.
        record = self.kinesis.get_records(ShardIterator=self.kinesis.get_shard_iterator(
            StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")["ShardIterator"],
            Limit=1)["Records"]
        event = mapping._event("shardId-000000000000", record)
        r = event["Records"][0]
        self.assertEqual(set(r), {"kinesis", "eventSource", "eventVersion", "eventID", "eventName",
                                  "invokeIdentityArn", "awsRegion", "eventSourceARN"})
        self.assertEqual(set(r["kinesis"]), {"kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data",
                                             "approximateArrivalTimestamp"})
        self.assertEqual(r["eventID"], "shardId-000000000000:" + r["kinesis"]["sequenceNumber"])
        self.assertTrue(r["eventSourceARN"].startswith("arn:aws:kinesis:us-east-1:"))
        # 6 batches of 5 (+ retries: the transient one, the crash and its cold start, a bisection).
        self.assertLessEqual(mapping.invocations, 14)
        self.assertEqual(f.instances[0].starts, 2, "one cold start after the crash")
        f.check()

    def test_kinesis_error_bisects_then_gives_up_on_the_record(self):
        stream = self.stream()
        payloads = [f"ok:{i}" for i in range(5)] + ["boom:x"] + [f"ok:{i}" for i in range(5, 8)]
        self.put(stream, payloads)
        f = self.function(name="KinesisBoom", handler="telemetry_processor")
        mapping = KinesisMapping(f, self.kinesis, stream, batch_size=100, max_retries=2).start()
        self.addCleanup(mapping.stop)
        wait_for(lambda: mapping.on_failure, "the boom record given up")
        want = sorted(p for p in payloads if not p.startswith("boom"))
        wait_for(lambda: sorted(self.lines("processed")) == want, "the other records processed")
        mapping.stop()
        (failure,) = mapping.on_failure
        self.assertEqual(failure["KinesisBatchInfo"]["batchSize"], 1)
        self.assertEqual(failure["requestContext"]["approximateInvokeCount"], 3)
        self.assertEqual(sorted(self.lines("processed")), want)
        # 9 -> 4 + 5 -> (5 fails) 2 + 3 -> ... the singleton 3 times: bounded, no loop.
        self.assertLessEqual(mapping.invocations, 12)

    def queue(self, max_receives=2, visibility=1):
        name = "q-" + os.path.basename(self.dir).lower().replace("_", "-")
        dlq = self.sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = self.sqs.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})})[
            "QueueUrl"]
        return name, url, dlq

    def test_sqs_partial_failures_errors_and_attributes(self):
        name, url, dlq = self.queue()
        bodies = [f"ok:{i}" for i in range(12)] + ["transient:t"]

        def send(body):
            self.sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
                "pwrcell-encoding": {"DataType": "String", "StringValue": "json"}})

        for body in bodies:
            send(body)
        f = self.function(name="SqsFunction", handler="concerto_gateway", concurrency=2)
        mapping = SqsMapping(f, self.sqs, name, batch_size=10, max_concurrency=2).start()
        self.addCleanup(mapping.stop)
        wait_for(lambda: sorted(self.lines("processed")) == sorted(bodies),
                 lambda: f"the messages processed once: {self.lines('processed')} {mapping.errors}", 30)
        # A message that makes the invocation fail is never deleted: after maxReceiveCount
        # receives the queue's redrive policy moves it to the DLQ.
        send("boom:b")

        def in_dlq():
            answer = self.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            return [m["Body"] for m in answer.get("Messages", [])]

        self.assertEqual(wait_for(in_dlq, "the failing message in the DLQ", 30), ["boom:b"])
        mapping.stop()
        self.assertGreaterEqual(mapping.failed_invocations, 2)
        self.assertGreaterEqual(len(mapping.reported), 1, "the transient message was reported")
        self.assertEqual(mapping.contract, [])
        self.assertEqual(mapping.errors, [])
        self.assertEqual(sorted(self.lines("processed")), sorted(bodies))
        attributes = [json.loads(line) for line in self.lines("attributes")]
        self.assertTrue(all(a["messageAttributes"]["pwrcell-encoding"]["stringValue"] == "json" and
                            a["messageAttributes"]["pwrcell-encoding"]["dataType"] == "String" for a in attributes))
        self.assertTrue(all(int(a["attributes"]["ApproximateReceiveCount"]) >= 1 and a["attributes"]["SentTimestamp"]
                            for a in attributes))
        self.assertEqual(int(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]), 0)

    def test_schedule(self):
        f = self.function(name="Poller", handler="registrar_poller")
        schedule = Schedule(f, 0.3).start()
        self.addCleanup(schedule.stop)
        wait_for(lambda: len(schedule.results) >= 3, "three ticks")
        schedule.stop()
        self.assertTrue(all(ok for ok, _ in schedule.results))
        event = json.loads(self.lines("scheduled")[0])
        self.assertEqual(event["detail-type"], "Scheduled Event")
        self.assertEqual(event["source"], "aws.events")
        self.assertRegex(event["resources"][0], r"^arn:aws:events:us-east-1:\d{12}:rule/")
        self.assertEqual(schedule.contract, [])


if __name__ == "__main__":
    unittest.main()
