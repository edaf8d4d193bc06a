#!/usr/bin/env python3
"""Benchmark of the Lambda `bootstrap` under the local runtime API stand-in (tests/lambda):

1. cold-start initialisation: process start (fork/exec) to its first GET /runtime/invocation/next,
   median and p95 over --starts starts of each handler in --handlers (the goal: < 20 ms);
2. the cost of one warm telemetry_processor invocation on a 100-record Kinesis batch (EnergyRecordSets
   of commissioned fleet-sim systems, so every record is matched, mapped and its points queued)
   against moto (DynamoDB, SQS) and the simulators: median and p95 over --invocations invocations,
   each on a batch of new records; wall time from queueing the event to the response.

Not a timed test: prints the numbers and the command. Needs the build (PWRCELL_BIN_DIR, default
build/bin) and python3 with moto and boto3.

    python3 bench/lambda_cold_start.py [--starts 20] [--invocations 20] [--systems 10]
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.path.join(HERE, ".."))
os.environ.setdefault("PWRCELL_SOURCE_DIR", SOURCE_DIR)
os.environ["PWRCELL_E2E_BACKEND"] = "lambda"
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "lambda"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "e2e"))

from e2e_checks import wait_all_commissioned  # noqa: E402
from harness import BOOTSTRAP, FLEET_SIM, Stack, live_scenario  # noqa: E402
from lambda_runtime import Function, b64  # noqa: E402
from records import decode_record, read_file_sink  # noqa: E402


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


class _Bench(unittest.TestCase):
    def runTest(self):
        pass


# The floor of the measurement: a minimal runtime client in C (fork/exec of a small dynamically
# linked program, one connect and GET /next), which does nothing else before asking for an event.
FLOOR_C = r"""
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>
int main(void) {
  const char* api = getenv("AWS_LAMBDA_RUNTIME_API");
  const char* colon = strchr(api, ':');
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(colon + 1));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) return 1;
  const char* req = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n";
  write(s, req, strlen(req));
  char buf[4096];
  while (read(s, buf, sizeof buf) > 0) {}
  return 0;
}
"""


def floor_client(workdir):
    source = os.path.join(workdir, "floor.c")
    binary = os.path.join(workdir, "floor-client")
    with open(source, "w") as f:
        f.write(FLOOR_C)
    built = subprocess.run(["cc", "-O2", "-o", binary, source], capture_output=True, text=True)
    return binary if built.returncode == 0 else None


def cold_starts(stack, handlers, starts):
    deployment = stack.adapter.deployment
    results = {}
    workdir = os.path.join(stack.dir, "bench")
    os.makedirs(workdir, exist_ok=True)
    floor = floor_client(workdir)
    for handler in ([("floor", floor)] if floor else []) + [(h, BOOTSTRAP) for h in handlers]:
        handler, program = handler
        function = Function(f"Bench-{handler}", handler, program, workdir,
                            variables=deployment.env, base_env=deployment.aws_env)
        instance = function.instances[0]
        durations = []
        for _ in range(starts):
            durations.append(instance.warm_init())
            instance.sandbox.close()  # the next start is cold
            instance.sandbox = None
        function.close()
        results[handler] = durations
    return results


def kinesis_event(blobs, first_sequence):
    now = time.time()
    records = []
    for i, blob in enumerate(blobs):
        sequence = str(first_sequence + i).rjust(56, "0")
        records.append({"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"p{i}", "sequenceNumber": sequence,
                                    "data": b64(blob), "approximateArrivalTimestamp": now},
                        "eventSource": "aws:kinesis", "eventVersion": "1.0",
                        "eventID": f"shardId-000000000000:{sequence}", "eventName": "aws:kinesis:record",
                        "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench", "awsRegion": "us-east-1",
                        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench"})
    return {"Records": records}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--handlers", default="telemetry_processor,concerto_gateway,registrar_poller")
    parser.add_argument("--invocations", type=int, default=20)
    parser.add_argument("--systems", type=int, default=10)
    args = parser.parse_args()
    if not os.path.exists(BOOTSTRAP):
        sys.exit(f"no bootstrap at {BOOTSTRAP}: build the `bootstrap` target (or set PWRCELL_BIN_DIR)")

    holder = _Bench()
    stack = Stack(holder, scenario=live_scenario(systems=args.systems, seed=42), auto_commissioning=True)
    # Registration and commissioning need the control gateway, the CES gateway and the registrar;
    # the telemetry processor is invoked directly below (its Kinesis mapping stays idle: nothing is
    # put on the stream), the telemetry gateway is left out so that the push_telemetry messages
    # wait in their queue instead of competing for the CPU.
    stack.lambda_options = {"only": {"TelemetryProcessorFunction", "ConcertoGatewayFunction",
                                     "PwrcellGatewayFunction", "RegistrarPollerFunction"}}
    try:
        stack.start()
        cold = cold_starts(stack, [h for h in args.handlers.split(",") if h], args.starts)

        systems = stack.fleet_systems()
        stack.enroll_fleet()
        wait_all_commissioned(stack, systems, timeout=180)
        # Records of every system, 100 a batch, each batch new (fleet-sim's fast clock).
        per_system = (args.invocations + 1) * 100 // len(systems) + 1
        path = os.path.join(stack.dir, "records.bin")
        subprocess.run([FLEET_SIM, "--scenario", stack.scenario_path, "--sink", "file:" + path, "--speed", "100000",
                        "--duration", str(per_system)], check=True, capture_output=True, timeout=120)
        blobs = read_file_sink(path)
        blobs.sort(key=lambda b: decode_record(b)["energyRecord"][0]["currentTimestamp"][0])
        function = stack.adapter.deployment.function("TelemetryProcessorFunction")
        walls, inside = [], []
        for n in range(args.invocations + 1):  # the first one warms the instance up (store opened)
            batch = blobs[n * 100:(n + 1) * 100]
            if len(batch) < 100:
                break
            started = time.monotonic()
            ok, answer = function.invoke(kinesis_event(batch, 1 + n * 100))
            wall = time.monotonic() - started
            if not ok or answer.get("batchItemFailures"):
                sys.exit(f"invocation {n} failed: {answer}")
            if n:
                walls.append(wall)
                inside.append(function.invocations[-1][4])
        problems = stack.lambda_violations()
        if problems:
            sys.exit("contract violations: " + "; ".join(problems))
    finally:
        holder.doCleanups()

    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"command: {command}")
    print(f"bootstrap: {BOOTSTRAP} ({os.path.getsize(BOOTSTRAP)} bytes)")
    for handler, durations in cold.items():
        what = "the harness's floor: a minimal C client's start to /next" if handler == "floor" else \
            f"cold start init ({handler}, process start to first /next)"
        print(f"{what}, {len(durations)} starts: median {ms(statistics.median(durations))}, "
              f"p95 {ms(percentile(durations, 95))}, min {ms(min(durations))}, max {ms(max(durations))}")
    print(f"load average during the run: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    print(f"warm telemetry_processor invocation, 100-record Kinesis batch ({len(walls)} invocations, "
          f"{args.systems} commissioned systems, moto + simulators): median {ms(statistics.median(walls))}, "
          f"p95 {ms(percentile(walls, 95))} (inside the function: median {ms(statistics.median(inside))})")


if __name__ == "__main__":
    main()
