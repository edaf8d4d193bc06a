#!/usr/bin/env python3
"""AWS calls per telemetry record of `serve` on the AWS backends, against moto (issue 11).

Runs the e2e harness's stack with PWRCELL_E2E_BACKEND=aws: concerto-sim, ces-sim, moto, `serve`
on DynamoDB/SQS/Secrets Manager, fleet-sim feeding the Kinesis stream with live records (one per
system per second) for --seconds. Waits until every system is commissioned first, and until the
telemetry is in Concerto after, then reads serve's /metrics: pwrcell_aws_requests_total by service,
the Kinesis records read, the points Concerto stored, and divides. moto's speed says nothing about
AWS's; the call counts are what a deployment pays for (and what the throughput quotas count).

  python3 bench/aws_calls.py --bin-dir build/bin [--systems 20] [--seconds 30]
"""
import argparse
import os
import sys
import time
import unittest

parser = argparse.ArgumentParser()
parser.add_argument("--bin-dir", default="build/bin")
parser.add_argument("--systems", type=int, default=20)
parser.add_argument("--seconds", type=int, default=30)
parser.add_argument("--fast-schedules", action="store_true",
                    help="the e2e tests' 1-2 s registrar, CES and sweep intervals (their calls then dominate); "
                         "default: the production intervals (60 s, 900 s, 60 s), so the calls are the telemetry's")
args = parser.parse_args()
os.environ["PWRCELL_BIN_DIR"] = os.path.abspath(args.bin_dir)
os.environ["PWRCELL_E2E_BACKEND"] = "aws"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

from harness import Stack, live_scenario, metric, parse_metrics, wait_for  # noqa: E402


class Run(unittest.TestCase):
    def runTest(self):
        config = {"liveness.offline_timeout_s": 60, "aws.receive_wait_s": 5}
        if not args.fast_schedules:
            config.update({"schedule.registrar_poll_s": 60, "schedule.ces_state_poll_s": 900,
                           "schedule.liveness_sweep_s": 60})
        stack = Stack(self, scenario=live_scenario(systems=args.systems, seed=5150), config=config)
        stack.start(adapter=False)
        ids = stack.enroll_fleet()  # before serve starts: its first registrar poll finds them
        stack.start_adapter()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=300, interval=1)
        before = stack.metrics()
        points_before = stack.concerto_get("/admin/telemetry?limit=1")["count"]
        started = time.monotonic()
        stack.start_fleet(extra=("--duration", str(args.seconds)))
        wait_for(lambda: not stack.fleet.running(), "fleet-sim to finish", timeout=args.seconds + 120)
        records = args.systems * (args.seconds + 1)
        wait_for(lambda: metric(stack.metrics(), "pwrcell_kinesis_records_read_total") >= records,
                 f"{records} records read", timeout=300, interval=1)
        # Points keep arriving for a moment after the last record is read.
        last, stable = -1, 0
        while stable < 3:
            count = stack.concerto_get("/admin/telemetry?limit=1")["count"]
            stable = stable + 1 if count == last else 0
            last = count
            time.sleep(1)
        elapsed = time.monotonic() - started
        after = stack.metrics()
        read = metric(after, "pwrcell_kinesis_records_read_total") - metric(before, "pwrcell_kinesis_records_read_total")
        points = last - points_before
        print(f"systems {args.systems}, {args.seconds + 1} s of records: {read:.0f} records read, "
              f"{points} points in Concerto, {elapsed:.1f} s from the first record to the last point")
        print(f"{'service':<16} {'calls':>8} {'per record':>11}")
        total = 0.0
        for service in ("dynamodb", "sqs", "kinesis", "secretsmanager"):
            calls = metric(after, "pwrcell_aws_requests_total", service=service) - \
                metric(before, "pwrcell_aws_requests_total", service=service)
            total += calls
            print(f"{service:<16} {calls:>8.0f} {calls / read:>11.2f}")
        print(f"{'all':<16} {total:>8.0f} {total / read:>11.2f}")
        outcomes = {}
        for (name, labels), value in after.items():
            if name == "pwrcell_aws_requests_total":
                d = dict(labels)
                outcomes[d["outcome"]] = outcomes.get(d["outcome"], 0) + value
        print("attempts by outcome since start:", {k: int(v) for k, v in sorted(outcomes.items())})


if __name__ == "__main__":
    result = unittest.TextTestRunner(verbosity=0).run(Run())
    sys.exit(0 if result.wasSuccessful() else 1)
