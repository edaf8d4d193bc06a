"""The shortest whole path: a system enrolled in Concerto is registered, gets its metadata from
CES, is commissioned, sends telemetry that arrives as points, and comes ONLINE; SIGTERM exits 0."""

import unittest

from harness import Stack, live_scenario, metric, wait_for


class SmokeTest(unittest.TestCase):
    def test_one_system_from_enrolment_to_online(self):
        stack = Stack(self, scenario=live_scenario(systems=1, ac_coupled_fraction=0.0)).start()
        (remote_id,) = stack.enroll_fleet()
        wait_for(lambda: (d := stack.device(remote_id)) and d["commissioning"]["state"] == "DONE",
                 "commissioning DONE")
        stack.start_fleet()
        device = wait_for(lambda: (d := stack.device(remote_id)) and d["remote_state"] == "ONLINE" and d,
                          "the system ONLINE")
        self.assertEqual(device["coupling"], "DC")
        wait_for(lambda: stack.telemetry(asset_id=device["inverters"][0]["asset_id"], limit=1), "inverter points")
        samples = stack.metrics()
        self.assertGreater(metric(samples, "pwrcell_telemetry_points_total"), 0)
        # The adapter logged in: the token is among the secrets no log may show (checked at close).
        self.assertTrue(stack.concerto_tokens(), "concerto-sim issued no token the harness knows of")
        stack.fleet.stop()
        self.assertEqual(stack.adapter.stop(), 0, stack.adapter.log()[-2000:])
        self.assertIn("stopped cleanly", stack.adapter.log())


if __name__ == "__main__":
    unittest.main()
