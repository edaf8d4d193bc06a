"""A restart of `serve` in the middle of a Kinesis stream resumes from its checkpoints (issue 11,
AWS backends; runs as e2e_aws.stream_restart, skipped on the embedded backend, which has no
stream): fleet-sim streams live records into the Kinesis stream while the adapter is stopped
(SIGTERM) and started again on the same moto resources. At the end every record fleet-sim
delivered is in Concerto as points, and none reached Concerto twice: concerto-sim counts every
point it was sent again (`duplicates`), which must stay 0, since a graceful stop checkpoints the
batch in hand and the new process reads from after it."""

import re
import time
import unittest

from harness import BACKEND, Stack, live_scenario, metric, wait_for
from records import concerto_roles, iso, parse_iso, series_of

SYSTEMS = 3
DURATION_S = 24


@unittest.skipUnless(BACKEND == "aws", "needs the Kinesis stream of the AWS backend (PWRCELL_E2E_BACKEND=aws)")
class StreamRestartTest(unittest.TestCase):
    def test_a_restart_mid_stream_resumes_from_the_checkpoint(self):
        stack = Stack(self, scenario=live_scenario(systems=SYSTEMS, seed=77)).start()
        ids = stack.enroll_fleet()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=90)
        roles = [concerto_roles(stack, i) for i in ids]

        stack.start_fleet(extra=("--duration", str(DURATION_S)))
        start = parse_iso(stack.fleet.wait_line(r"systems from (\S+Z)").group(1))
        first = stack.adapter
        # Wait until the first process has checkpointed records, then stop it mid-stream.
        wait_for(lambda: metric(stack.metrics(), "pwrcell_kinesis_checkpoints_total") >= 2,
                 "the first process to checkpoint", timeout=60)
        time.sleep(3)
        read_before = metric(stack.metrics(), "pwrcell_kinesis_records_read_total")
        self.assertGreater(read_before, 0)
        self.assertEqual(first.stop(), 0, first.log()[-3000:])
        time.sleep(4)  # records keep arriving in the stream meanwhile
        second = stack.start_adapter()
        self.assertIsNot(second, first)

        wait_for(lambda: not stack.fleet.running(), "fleet-sim to finish", timeout=DURATION_S + 90)
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
                     f"{len(expected)} points in Concerto", timeout=120, interval=1.0)
        except AssertionError:
            pass  # the comparison below says what is missing
        keys = [(p["assetId"], p["metric"], p["timestamp"]) for p in stack.telemetry()]
        missing = sorted(expected - set(keys))
        self.assertEqual(missing[:5], [], f"{len(missing)} of {len(expected)} points never reached Concerto")
        self.assertEqual(len(keys), len(set(keys)), "a point stored twice")
        # Every record was processed once: none was sent to Concerto a second time.
        self.assertEqual(stack.stats()["duplicates"], 0, "points sent to Concerto twice")
        # The second process resumed where the first stopped: it read only what came after.
        read_after = metric(stack.metrics(), "pwrcell_kinesis_records_read_total")
        self.assertGreater(read_after, 0)
        self.assertLessEqual(read_before + read_after, produced,
                             f"records read twice: {read_before} before the restart, {read_after} after, "
                             f"{produced} in the stream")
        self.assertEqual(metric(stack.metrics(), "pwrcell_kinesis_bad_records_total"), 0)


if __name__ == "__main__":
    unittest.main()
