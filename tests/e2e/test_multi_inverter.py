"""A system with two inverters end to end (SPEC section 6, last paragraph): CES lists both
(ces-sim's second_inverter fault) and fleet-sim streams a record per inverter. Commissioning creates
one INVERTER asset per inverter (each with its own rating, under the SYSTEM, on the site) with the
batteries and PV links under the first; the records of both inverters match the system and reach
their own INVERTER asset in Concerto; an error state of the second inverter makes the system ERROR
although the first reports GRID_CONNECTED, and every INVERTER asset gets the system's state."""

import unittest

from e2e_checks import check_commissioned, wait_all_commissioned
from harness import API_KEY, Stack, http, live_scenario, metric, wait_for

# Fleet clock (fleet-sim's start = 0): system 0 has its second inverter from the start; that
# inverter reports an error state from 15 s to 25 s. System 1 has one inverter.
FAULTS = """
[[fault]]
at_s = 0
system = 0
kind = "second_inverter"
[[fault]]
at_s = 15
system = 0
kind = "inverter_error"
inverter = 1
[[fault]]
at_s = 25
system = 0
kind = "inverter_ok"
inverter = 1
"""


def ces_metadata(stack, system_id):
    """What ces-sim answers for the system (the adapter's view of how it is built)."""
    status, body = http("GET", f"{stack.ces_url}/systems/v1/{system_id}/metadata?inverterSetting=true",
                        headers={"x-api-key": API_KEY})
    if status != 200:
        raise AssertionError(f"CES metadata of {system_id}: {status} {body}")
    return body


class MultiInverterTest(unittest.TestCase):
    def test_two_inverters_commissioned_and_each_feeds_its_own_asset(self):
        stack = Stack(self, scenario=live_scenario(systems=2, seed=2024, faults=FAULTS, ac_coupled_fraction=0.0,
                                                   site_meter_fraction=1.0)).start()
        systems = [ces_metadata(stack, s["systemId"]) for s in stack.fleet_systems()]
        two, one = systems
        self.assertEqual(len(two["inverters"]), 2, "scenario precondition: CES lists two inverters")
        self.assertEqual(len(one["inverters"]), 1)
        first_rcpn, second_rcpn = (i["rcpn"] for i in two["inverters"])
        stack.enroll_fleet()

        # Commissioning: one INVERTER per inverter, batteries and PV links under the first.
        wait_all_commissioned(stack, systems)
        check_commissioned(self, stack, systems)
        inverters = {a["remoteId"]: a for a in stack.assets("INVERTER")}
        self.assertEqual(len(inverters), 3)
        first, second = inverters[first_rcpn], inverters[second_rcpn]
        device = stack.device(two["systemId"])
        self.assertEqual(device["inverter_rcpns"], [first_rcpn, second_rcpn])
        system_id = device["concerto_asset_id"]

        # Telemetry: both inverters' records match the system and reach their own INVERTER asset.
        stack.start_fleet()

        def points(asset, metric_name):
            return stack.telemetry(asset_id=asset["id"], metric_name=metric_name)

        wait_for(lambda: points(first, "SOURCE_MAX_POWER") and points(second, "SOURCE_MAX_POWER"),
                 "INVERTER_OUTPUT points on both INVERTER assets")
        rating_kw = two["inverters"][0]["ratedPowerW"] / 1000.0
        for asset in (first, second):
            self.assertTrue(all(p["value"] == rating_kw for p in points(asset, "SOURCE_MAX_POWER")), asset)
        self.assertTrue(all(p["value"] == 0.0 for p in points(second, "REAL_POWER")), "the second stands by")
        # The second inverter's own state goes to its asset; the SYSTEM's is the first inverter's.
        wait_for(lambda: points(second, "INVERTER_STATE") and points(first, "INVERTER_STATE"),
                 "INVERTER_STATE on both INVERTER assets")
        system_states = stack.telemetry(asset_id=system_id, metric_name="INVERTER_STATE")
        self.assertTrue(system_states)
        stamps = [p["timestamp"] for p in system_states]
        self.assertEqual(len(stamps), len(set(stamps)), "one SYSTEM INVERTER_STATE per record time")
        samples = stack.metrics()
        self.assertEqual(metric(samples, "pwrcell_telemetry_records_total", outcome="unmatched"), 0,
                         "no record of either inverter is dropped")
        readings = wait_for(lambda: len((d := stack.device(two["systemId"]))["inverter_readings"]) == 2
                            and d["inverter_readings"], "a reading of each inverter")
        self.assertEqual([r["rcpn"] for r in readings], [first_rcpn, second_rcpn])

        # The second inverter's error: the system is ERROR although the first says GRID_CONNECTED,
        # and the SYSTEM, both INVERTERs and the site meter are told so; then ONLINE again.
        def history(asset_id):
            return [h for h in stack.remote_states(asset_id, "asset") if h["state"] != "OFFLINE"]

        def went(states):
            def check():
                histories = [history(a) for a in (system_id, first["id"], second["id"])]
                return all([h["state"] for h in entries][-len(states):] == states for entries in histories) \
                    and histories
            return check

        histories = wait_for(went(["ONLINE", "ERROR"]), "ERROR on the SYSTEM and both INVERTER assets", 60)
        for entries in histories:
            self.assertIn(second_rcpn, entries[-1]["reason"], entries[-1])
            self.assertIn("0x7010", entries[-1]["reason"], entries[-1])
        wait_for(went(["ONLINE", "ERROR", "ONLINE"]), "ONLINE again once the second inverter recovers", 60)
        self.assertEqual(stack.device(two["systemId"])["inverter_state"], 2080)

        # The single-inverter system was never disturbed.
        other = stack.device(one["systemId"])
        self.assertEqual(len(other["inverters"]), 1)
        self.assertNotIn("ERROR", [h["state"] for h in stack.remote_states(other["concerto_asset_id"], "asset")])
        self.assertEqual(stack.adapter.stop(), 0)


if __name__ == "__main__":
    unittest.main()
