"""`pwrcell-adapter replay FILE`: a recorded stream (fleet-sim's file sink format) appended to the
store of a stopped `serve` is forwarded when serve starts again; replaying it twice, while serve
runs, loses nothing and adds nothing (Concerto dedupes, queues are at-least-once); a truncated
recording is refused with exit code 5 after storing the whole records before the cut."""

import os
import unittest

from harness import FLEET_SIM, Process, Stack, live_scenario, metric, wait_for

SYSTEMS = 2
RECORDS_PER_SYSTEM = 5  # --duration 4 at a 1 s interval: k = 0..4


class ReplayTest(unittest.TestCase):
    def test_recorded_stream_is_forwarded_once_however_often_it_is_replayed(self):
        stack = Stack(self, scenario=live_scenario(systems=SYSTEMS, seed=515), auto_commissioning=False).start()
        ids = stack.enroll_fleet()
        devices = wait_for(lambda: all((d := stack.device(i)) and d.get("inverter_rcpns") for i in ids)
                           and [stack.device(i) for i in ids], "registration and metadata")
        system_assets = [d["concerto_asset_id"] for d in devices]

        recording = os.path.join(stack.dir, "recording.bin")
        fleet = Process("fleet-sim-file", [FLEET_SIM, "--scenario", stack.scenario_path, "--sink", "file:" + recording,
                                           "--duration", str(RECORDS_PER_SYSTEM - 1)], stack.dir)
        self.assertEqual(fleet.stop_when_done(timeout=60), 0, fleet.log())
        self.assertEqual(stack.adapter.stop(), 0, stack.adapter.log()[-2000:])

        config = os.path.join(stack.dir, "deployment.toml")
        replayed = stack.cli("replay", recording, "--config", config)
        self.assertEqual(replayed.returncode, 0, replayed.stderr)
        self.assertIn(f"{SYSTEMS * RECORDS_PER_SYSTEM} records stored", replayed.stdout)
        queues = stack.cli("queues", "list", "--config", config, "--json")
        self.assertEqual(queues.returncode, 0, queues.stderr)
        self.assertIn('"ingest"', queues.stdout)

        stack.start_adapter()
        for asset in system_assets:
            wait_for(lambda a=asset: stack.telemetry_count(a, "INVERTER_STATE") == RECORDS_PER_SYSTEM,
                     f"{RECORDS_PER_SYSTEM} INVERTER_STATE points on SYSTEM asset {asset}", timeout=60)

        # Again, while serve runs: every point is a duplicate Concerto drops; nothing new appears.
        def decoded():
            return metric(stack.metrics(), "pwrcell_telemetry_records_total", outcome="decoded")

        duplicates_before = stack.stats()["duplicates"]
        decoded_before = decoded()
        self.assertEqual(decoded_before, SYSTEMS * RECORDS_PER_SYSTEM)
        again = stack.cli("replay", recording, "--config", config)
        self.assertEqual(again.returncode, 0, again.stderr)
        wait_for(lambda: decoded() == decoded_before + SYSTEMS * RECORDS_PER_SYSTEM, "the second replay processed",
                 timeout=60)
        wait_for(lambda: stack.stats()["duplicates"] > duplicates_before, "Concerto to see the duplicates", timeout=60)
        for asset in system_assets:
            self.assertEqual(stack.telemetry_count(asset, "INVERTER_STATE"), RECORDS_PER_SYSTEM)

        # A recording cut in the middle of its last record: exit 5, the whole records before it kept.
        with open(recording, "rb") as f:
            data = f.read()
        first_length = int.from_bytes(data[:4], "big")
        truncated = os.path.join(stack.dir, "truncated.bin")
        with open(truncated, "wb") as f:
            f.write(data[:4 + first_length + 6])
        cut = stack.cli("replay", truncated, "--config", config)
        self.assertEqual(cut.returncode, 5, cut.stdout + cut.stderr)
        self.assertIn("truncated", cut.stderr)
        wait_for(lambda: decoded() == decoded_before + SYSTEMS * RECORDS_PER_SYSTEM + 1,
                 "the one whole record before the cut processed", timeout=60)

        # A length prefix that claims more than the file holds (4 GiB - 1): refused as truncated
        # from the file's size, before anything that size is allocated.
        lying = os.path.join(stack.dir, "lying.bin")
        with open(lying, "wb") as f:
            f.write(b"\xff\xff\xff\xff" + b"abc")
        lied = stack.cli("replay", lying, "--config", config)
        self.assertEqual(lied.returncode, 5, lied.stdout + lied.stderr)
        self.assertIn("it declares 4294967295 bytes, 3 are left", lied.stderr)


if __name__ == "__main__":
    unittest.main()
