"""Concerto's rate limit across Lambda instances (docs/LAMBDA.md "Rate limits across instances"):
N = concerto_control_concurrency + concerto_telemetry_concurrency instances of the two
concerto_gateway functions drain a backlog (list_assets on the control queue, push_telemetry on the
telemetry queue) against concerto-sim started with --rate-limit 25. No request may be refused by the
rate limit (HTTP 429), the busiest one-second window stays at or under 25 requests, and the
throughput is close to the limit (the design's N(r + 1) bound with r = 25/N - 1 spends at least
N*r = 25 - N requests per second)."""

import json
import threading
import time
import unittest

import lambda_e2e  # noqa: F401 - the e2e harness in Lambda mode
from harness import Stack, live_scenario, metric, wait_for

LIMIT = 25
CONTROL, TELEMETRY = 2, 2   # N = 4
MESSAGES = 120              # per queue


class RateLimitTest(unittest.TestCase):
    def test_instances_share_the_limit(self):
        stack = Stack(self, scenario=live_scenario(systems=1, seed=3), auto_commissioning=False,
                      concerto_rate_limit=LIMIT,
                      config={"concerto.max_requests_per_second": LIMIT,
                              "lambda.concerto_control_concurrency": CONTROL,
                              "lambda.concerto_telemetry_concurrency": TELEMETRY}).start(adapter=False)
        system = stack.enroll("rate-limit-system-0001")
        sqs = stack.boto3("sqs")
        control = sqs.get_queue_url(QueueName=stack.aws_names["concerto_queue"])["QueueUrl"]
        telemetry = sqs.get_queue_url(QueueName=stack.aws_names["concerto_telemetry_queue"])["QueueUrl"]
        now_ms = int(time.time() * 1000)
        for i in range(0, MESSAGES, 10):
            sqs.send_message_batch(QueueUrl=control, Entries=[
                {"Id": str(k), "MessageBody": json.dumps({"op": "list_assets"})} for k in range(10)])
            sqs.send_message_batch(QueueUrl=telemetry, Entries=[
                {"Id": str(k), "MessageBody": json.dumps({"op": "push_telemetry", "series": [
                    {"a": system["id"], "t": now_ms - 1000 * (i + k), "m": ["REAL_POWER"], "v": [1.5]}]})}
                for k in range(10)])
        before = stack.stats()

        samples = []  # (monotonic time, requests so far)
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                samples.append((time.monotonic(), stack.stats()["requests"] - before["requests"]))
                stop.wait(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.addCleanup(stop.set)
        stack.lambda_options = {"only": {"ConcertoGatewayFunction", "ConcertoTelemetryGatewayFunction"}}
        stack.start_adapter()

        def items_done():
            return metric(stack.metrics(), "pwrcell_lambda_batch_items_total", handler="concerto_gateway",
                          outcome="done")

        wait_for(lambda: items_done() >= 2 * MESSAGES, f"the {2 * MESSAGES} messages handled", 120, 0.5)
        stop.set()
        watcher.join(5)
        stats = stack.stats()
        requests = stats["requests"] - before["requests"]
        refused = stats["responsesByStatus"].get("429", 0) - before["responsesByStatus"].get("429", 0)

        # The busiest one-second window (from the 50 ms samples: within one sample of exact).
        busiest = 0
        for i, (t0, n0) in enumerate(samples):
            j = i
            while j + 1 < len(samples) and samples[j + 1][0] - t0 <= 1.0:
                j += 1
            busiest = max(busiest, samples[j][1] - n0)
        # Throughput in the steady part: from the 10th to the 90th percentile of the requests.
        first = next(t for t, n in samples if n >= 0.1 * requests)
        last = next(t for t, n in samples if n >= 0.9 * requests)
        rate = 0.8 * requests / (last - first)
        instances = CONTROL + TELEMETRY
        print(f"\nN = {instances} instances, limit {LIMIT}/s: {requests} requests, {refused} refused (429), "
              f"steady {rate:.1f} requests/s, busiest 1 s window {busiest} requests, "
              f"tokens issued {stats['tokensIssued'] - before['tokensIssued']}, "
              f"items {metric(stack.metrics(), 'pwrcell_lambda_batch_items_total', handler='concerto_gateway')}")
        self.assertEqual(refused, 0, "no request refused by the rate limit")
        self.assertLessEqual(busiest, LIMIT, "at most the limit in any one-second window")
        self.assertGreaterEqual(rate, 0.75 * LIMIT, "throughput close to the limit")
        self.assertGreaterEqual(requests, 2 * MESSAGES)
        self.assertEqual(stack.adapter.stop(), 0)


if __name__ == "__main__":
    unittest.main()
