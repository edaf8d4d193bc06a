"""Outages longer than the retry schedule lose nothing and dead-letter nothing (issue 13 item 2,
docs/RESILIENCE.md "Long outages"): a 429 storm on Concerto with a Retry-After longer than the
client waits, after every access token was revoked; CES down (its process stopped); Concerto and
CES down at once (every request answered 503).

The intervals are shortened through configuration only: a 2 s visibility timeout and 3 deliveries
per message make the retry schedule (2 s, then 4 s between deliveries) span under 10 s, and each
outage lasts 15 s, so a message that kept using up deliveries during an outage would be
dead-lettered. fleet-sim streams live records meanwhile; at the end every record it delivered must
be in concerto-sim as points, exactly once, with no dead letter anywhere. The full-length runs
(5-minute outages) are bench/long_outages.py's."""

import re
import time
import unittest

import urllib.parse

from harness import API_KEY, CES_SIM, Process, Stack, http, live_scenario, metric, wait_for
from records import concerto_roles, iso, parse_iso, series_of

SYSTEMS = 3
OUTAGE_S = 15
# The schedule of the shortened configuration: retries 2 s and 4 s apart, then the last delivery.
SHORT_QUEUES = {"queues.visibility_timeout_s": 2, "queues.max_receives": 3,
                "concerto.max_retries": 1, "ces.max_retries": 1}


class LongOutagesTest(unittest.TestCase):
    def start(self):
        stack = Stack(self, scenario=live_scenario(systems=SYSTEMS, seed=1313), config=dict(SHORT_QUEUES)).start()
        ids = stack.enroll_fleet()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=60)
        roles = [concerto_roles(stack, i) for i in ids]
        return stack, roles

    def run_fleet(self, stack, duration_s):
        stack.start_fleet(extra=("--duration", str(duration_s)))
        start = parse_iso(stack.fleet.wait_line(r"systems from (\S+Z)").group(1))
        wait_for(lambda: (t := self.newest_point_time(stack)) and t >= start + 1, "points of the first records")
        return start

    def newest_point_time(self, stack):
        points = stack.telemetry(limit=1)
        return parse_iso(points[-1]["timestamp"]) if points else None

    def ces_fault(self, stack, **fault):
        status, body = http("POST", stack.ces_url + "/admin/faults", fault)
        self.assertEqual(status, 200, body)

    def outage(self, stack, what, noticed):
        """Waits out OUTAGE_S seconds of wall time (the outage), after `noticed` holds."""
        wait_for(noticed, f"the {what} outage to be noticed", timeout=OUTAGE_S)
        began = time.monotonic()
        wait_for(lambda: time.monotonic() - began >= OUTAGE_S, f"the end of the {what} outage",
                 timeout=OUTAGE_S + 5, interval=0.5)

    def backlog(self, stack):
        """Messages waiting in the concerto-telemetry and ces queues (visible or in flight)."""
        samples = stack.metrics()
        return sum(metric(samples, "pwrcell_queue_depth", queue=q, state=s)
                   for q in ("concerto-telemetry", "ces") for s in ("visible", "in_flight"))

    def drained(self, stack, since):
        """Seconds from `since` until the backlog of the outage is sent (at most one message per
        system left: fleet-sim is still streaming)."""
        wait_for(lambda: self.backlog(stack) <= SYSTEMS, "the backlog drained", timeout=120, interval=0.5)
        return time.monotonic() - since

    def finish(self, stack, roles, start, duration_s):
        """fleet-sim delivered every record; every point they make is in Concerto exactly once; no
        message anywhere was dead-lettered."""
        wait_for(lambda: not stack.fleet.running(), "fleet-sim to finish", timeout=duration_s + 60)
        self.assertEqual(stack.fleet.proc.returncode, 0, stack.fleet.log()[-2000:])
        done = re.search(r"done: (\d+) intervals, (\d+) records produced, (\d+) delivered, (\d+) rejected, "
                         r"(\d+) not delivered", stack.fleet.log())
        self.assertIsNotNone(done, stack.fleet.log()[-2000:])
        intervals, produced, delivered, rejected, undelivered = map(int, done.groups())
        self.assertEqual((produced, delivered, rejected, undelivered), (SYSTEMS * intervals,) * 2 + (0, 0))
        timestamps = [iso(start + k) for k in range(intervals)]
        expected = {(asset, m, ts) for r in roles for (asset, m) in series_of(r) for ts in timestamps}
        try:
            wait_for(lambda: stack.concerto_get("/admin/telemetry?limit=1")["count"] >= len(expected),
                     f"{len(expected)} points in Concerto", timeout=90, interval=1.0)
        except AssertionError:
            pass  # the comparison below says what is missing
        keys = [(p["assetId"], p["metric"], p["timestamp"]) for p in stack.telemetry()]
        self.assertEqual(len(keys), len(set(keys)), "a point stored twice")
        missing = sorted(expected - set(keys))
        self.assertEqual(missing[:10], [], f"{len(missing)} of {len(expected)} points missing (first 10)")
        samples = stack.metrics()
        self.assertEqual(metric(samples, "pwrcell_queue_messages_total", outcome="dead_letter"), 0)
        self.assertEqual(metric(samples, "pwrcell_dead_letters"), 0)
        self.assertEqual(metric(samples, "pwrcell_telemetry_records_total", outcome="decoded"), produced)
        return samples

    def test_a_revoked_token_then_a_429_storm_longer_than_the_retry_schedule_lose_nothing(self):
        stack, roles = self.start()
        duration_s = 30
        start = self.run_fleet(stack, duration_s)

        # Every token issued so far stops working: the next request gets 401 and the client logs
        # in again with the stored credentials.
        issued = stack.stats()["tokensIssued"]
        stack.concerto_fault(kind="revoke_tokens")
        wait_for(lambda: stack.stats()["tokensIssued"] > issued, "a new login after the revocation")

        # Then every GraphQL request gets 429 with a Retry-After longer than the client waits (60 s):
        # the client gives up at once and the concerto pool pauses instead of burning deliveries.
        stack.concerto_fault(kind="429", retry_after_s=120)
        self.outage(stack, "429 storm",
                    lambda: metric(stack.metrics(), "pwrcell_queue_pool_paused", pool="concerto") == 1)
        samples = stack.metrics()
        self.assertGreater(metric(samples, "pwrcell_queue_pool_outage_seconds", pool="concerto"), 0)
        backlog = self.backlog(stack)
        self.assertGreater(backlog, SYSTEMS, "the storm held telemetry back")
        stack.concerto_fault(kind="clear")
        cleared = time.monotonic()
        print(f"\n429 storm: a backlog of {backlog:.0f} messages drained {self.drained(stack, cleared):.1f} s after "
              "the storm ended")

        samples = self.finish(stack, roles, start, duration_s)
        self.assertGreaterEqual(metric(samples, "pwrcell_queue_pool_pauses_total", pool="concerto"), 1)
        self.assertEqual(metric(samples, "pwrcell_queue_pool_paused", pool="concerto"), 0)
        self.assertGreater(stack.stats()["faultsInjected"]["429"], 3)
        self.assertEqual(stack.stats()["responsesByStatus"].get("401", 0) > 0, True, "the revoked token was used")

    def test_ces_down_then_ces_and_concerto_down_at_once_lose_nothing(self):
        stack, roles = self.start()
        duration_s = 45
        start = self.run_fleet(stack, duration_s)

        # CES down: its process stopped (connection refused), so the state poll's requests wait in
        # the ces queue with the ces pool paused, while telemetry keeps reaching Concerto. Then
        # ces-sim starts again on the same port.
        port = urllib.parse.urlsplit(stack.ces_url).port
        stack.ces.stop()
        self.outage(stack, "CES", lambda: metric(stack.metrics(), "pwrcell_queue_pool_paused", pool="ces") == 1)
        stack.ces = Process("ces-sim-again", [CES_SIM, "--port", str(port), "--api-key", API_KEY, "--scenario",
                                              stack.scenario_path, "--rate-limit", "0"], stack.dir)
        stack.ces.wait_line(r"listening on http://")
        wait_for(lambda: metric(stack.metrics(), "pwrcell_queue_pool_paused", pool="ces") == 0, "the ces pool resumed",
                 timeout=30)

        # Both down at once, every request answered 503.
        self.ces_fault(stack, kind="5xx")
        stack.concerto_fault(kind="5xx", status=503)
        self.outage(stack, "Concerto and CES",
                    lambda: all(metric(stack.metrics(), "pwrcell_queue_pool_paused", pool=p) == 1
                                for p in ("concerto", "ces")))
        backlog = self.backlog(stack)
        self.assertGreater(backlog, SYSTEMS, "the outage held telemetry back")
        self.ces_fault(stack, kind="clear")
        stack.concerto_fault(kind="clear")
        cleared = time.monotonic()
        print(f"\nConcerto and CES down: a backlog of {backlog:.0f} messages drained {self.drained(stack, cleared):.1f} s "
              "after the outage ended")

        samples = self.finish(stack, roles, start, duration_s)
        self.assertGreaterEqual(metric(samples, "pwrcell_queue_pool_pauses_total", pool="ces"), 2)
        self.assertGreaterEqual(metric(samples, "pwrcell_queue_pool_pauses_total", pool="concerto"), 1)
        self.assertGreater(stack.stats()["faultsInjected"]["5xx"], 0)


if __name__ == "__main__":
    unittest.main()
