#!/usr/bin/env python3
"""Long outages at full length (docs/RESILIENCE.md "Long outages"): `serve` with its default retry
schedule (visibility 60 s, 5 deliveries) against concerto-sim and ces-sim while fleet-sim streams
live records; one outage of OUTAGE_S seconds in the middle; then the records lost, the dead
letters and the time the backlog took to drain.

  bench/long_outages.py --case concerto --outage-s 300            # Concerto answers 503 for 5 min
  bench/long_outages.py --case ces --outage-s 300                 # CES answers 503
  bench/long_outages.py --case both --outage-s 300                # both at once
  bench/long_outages.py --case 429 --outage-s 300                 # Concerto 429, Retry-After 120 s
  bench/long_outages.py --case revoke --outage-s 0                # every token revoked once

Demo scale (default): 50 systems, one record per system every 5 s (sim/scenarios/demo-50-live.toml's
cadence). --systems and --interval-s change it. Binaries from $PWRCELL_BIN_DIR (default build/bin).

Figures (printed as one JSON line at the end, and readably before it):
  records      produced / delivered by fleet-sim (fleet-sim retries until the adapter stores them)
  points       expected from the delivered records / stored in concerto-sim (unique: Concerto
               de-duplicates by asset, metric and time) -> lost = expected - stored
  dead letters pwrcell_dead_letters summed over the queues, and queue_messages_total{dead_letter}
  drain_s      from the end of the outage until the concerto-telemetry and ces queues hold nothing
               visible or in flight (the backlog sent; fleet-sim keeps streaming meanwhile)
  complete_s   from the end of the outage until concerto-sim holds every expected point (or its
               last point arrived, when some never do)
"""

import argparse
import json
import os
import re
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "e2e"))
os.environ.setdefault("PWRCELL_SOURCE_DIR", SOURCE)
os.environ.setdefault("PWRCELL_BIN_DIR", os.path.join(SOURCE, "build", "bin"))

from harness import Stack, http, live_scenario, metric, wait_for  # noqa: E402
from records import concerto_roles, parse_iso, series_of  # noqa: E402


class _Owner(unittest.TestCase):
    """Stack wants a TestCase (assertions, cleanups); this script is not a test."""

    def runTest(self):
        pass


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=("concerto", "ces", "both", "429", "revoke"), required=True)
    parser.add_argument("--outage-s", type=float, default=300)
    parser.add_argument("--systems", type=int, default=50)
    parser.add_argument("--interval-s", type=int, default=5)
    parser.add_argument("--before-s", type=float, default=30, help="streaming before the outage")
    parser.add_argument("--after-s", type=float, default=30, help="streaming after the outage")
    parser.add_argument("--config", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a configuration override (TOML value), e.g. queues.max_receives=3")
    args = parser.parse_args()

    config = {"queues.visibility_timeout_s": 60, "queues.max_receives": 5,
              "liveness.record_interval_s": args.interval_s, "liveness.offline_timeout_s": 6 * args.interval_s,
              "concerto.timeout_s": 30, "ces.timeout_s": 30}
    for item in args.config:
        key, value = item.split("=", 1)
        config[key] = json.loads(value) if value[:1] in "0123456789-[{\"tf" else value

    owner = _Owner()
    stack = Stack(owner, scenario=live_scenario(systems=args.systems, seed=99, interval_s=args.interval_s),
                  config=config)
    try:
        stack.start()
        ids = stack.enroll_fleet()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=300, interval=1.0)
        roles = [concerto_roles(stack, i) for i in ids]
        series = sum(len(series_of(r)) for r in roles)
        log(f"{len(ids)} systems commissioned ({series} series)")

        duration_s = int(args.before_s + args.outage_s + args.after_s)
        stack.start_fleet(extra=("--duration", str(duration_s)))
        start = parse_iso(stack.fleet.wait_line(r"systems from (\S+Z)").group(1))
        time.sleep(args.before_s)

        def ces_fault(kind):
            status, body = http("POST", stack.ces_url + "/admin/faults", {"kind": kind})
            assert status == 200, body

        log(f"outage begins: {args.case}, {args.outage_s:.0f} s")
        if args.case in ("concerto", "both"):
            stack.concerto_fault(kind="5xx", status=503)
        if args.case in ("ces", "both"):
            ces_fault("5xx")
        if args.case == "429":
            stack.concerto_fault(kind="429", retry_after_s=120)
        if args.case == "revoke":
            stack.concerto_fault(kind="revoke_tokens")
        began = time.monotonic()
        peak = {}
        while time.monotonic() - began < args.outage_s:
            time.sleep(min(10.0, max(0.0, args.outage_s - (time.monotonic() - began))))
            samples = stack.metrics()
            for q in ("concerto-telemetry", "concerto", "ces"):
                depth = sum(metric(samples, "pwrcell_queue_depth", queue=q, state=s) for s in ("visible", "in_flight"))
                peak[q] = max(peak.get(q, 0), depth)
            log(f"  {time.monotonic() - began:5.0f} s: backlog {peak and {q: int(sum(metric(samples, 'pwrcell_queue_depth', queue=q, state=s) for s in ('visible', 'in_flight'))) for q in peak}}"
                f", paused {dict((p, metric(samples, 'pwrcell_queue_pool_paused', pool=p)) for p in ('concerto', 'ces'))}"
                f", dead letters {metric(samples, 'pwrcell_dead_letters'):.0f}")
        stack.concerto_fault(kind="clear")
        ces_fault("clear")
        ended = time.monotonic()
        log("outage ends")

        def backlog():
            samples = stack.metrics()
            return sum(metric(samples, "pwrcell_queue_depth", queue=q, state=s)
                       for q in ("concerto-telemetry", "ces") for s in ("visible", "in_flight"))
        # Below one interval's worth of messages counts as drained (fleet-sim keeps streaming).
        wait_for(lambda: backlog() <= args.systems, "the backlog drained", timeout=3600, interval=0.5)
        drain_s = time.monotonic() - ended
        log(f"backlog drained {drain_s:.1f} s after the outage")

        wait_for(lambda: not stack.fleet.running(), "fleet-sim to finish", timeout=duration_s + 600, interval=1.0)
        done = re.search(r"done: (\d+) intervals, (\d+) records produced, (\d+) delivered, (\d+) rejected, "
                         r"(\d+) not delivered", stack.fleet.log())
        intervals, produced, delivered, rejected, undelivered = map(int, done.groups())
        expected = series * intervals
        count = lambda: stack.concerto_get("/admin/telemetry?limit=1")["count"]  # noqa: E731
        # Until every point is there, or none has arrived for a minute (those are lost).
        stored, grew = count(), time.monotonic()
        while stored < expected and time.monotonic() - grew < 60:
            time.sleep(2.0)
            now = count()
            if now > stored:
                stored, grew = now, time.monotonic()
        complete_s = (time.monotonic() if stored >= expected else grew) - ended
        samples = stack.metrics(settle=True)
        stats = stack.stats()
        figures = {
            "case": args.case, "outage_s": args.outage_s, "systems": args.systems, "interval_s": args.interval_s,
            "records_produced": produced, "records_delivered": delivered, "records_rejected": rejected,
            "records_not_delivered": undelivered, "decoded": metric(samples, "pwrcell_telemetry_records_total",
                                                                    outcome="decoded"),
            "points_expected": expected, "points_stored": stored, "points_lost": max(0, expected - stored),
            "dead_letters": metric(samples, "pwrcell_dead_letters"),
            "dead_lettered_messages": metric(samples, "pwrcell_queue_messages_total", outcome="dead_letter"),
            "requeued_messages": metric(samples, "pwrcell_queue_messages_total", outcome="requeued"),
            "retried_messages": metric(samples, "pwrcell_queue_messages_total", outcome="retry"),
            "pauses": {p: metric(samples, "pwrcell_queue_pool_pauses_total", pool=p) for p in ("concerto", "ces")},
            "peak_backlog_messages": peak, "drain_s": round(drain_s, 1), "complete_s": round(complete_s, 1),
            "tokens_issued": stats.get("tokensIssued"), "faults_injected": stats.get("faultsInjected"),
        }
        log(json.dumps(figures, indent=1))
        print(json.dumps(figures), flush=True)
        return 0 if figures["points_lost"] == 0 and figures["dead_letters"] == 0 else 1
    finally:
        owner.doCleanups()


if __name__ == "__main__":
    sys.exit(main())
