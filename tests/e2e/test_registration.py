"""Registration end to end (SPEC sections 1-3): the SYSTEM assets of this adapter in Concerto, and
only those, become device records; their CES metadata is fetched and stored; coupling follows the
rule of contracts/ces-api.md for AC-coupled, DC-coupled and mixed systems (mixed: AC, with an
error naming the system); telemetry and CES never create a record; simulated systems are served
without any CES call."""

import unittest

from e2e_checks import expected_coupling, wait_all_commissioned
from harness import Stack, live_scenario, metric, wait_for

SCENARIO = dict(systems=5, seed=3, ac_coupled_fraction=0.5, site_meter_fraction=0.5)


def is_ac(system):
    return system["inverters"][0]["inverterSetting"]["acPVPowerRating"] > 0


def metadata_requests(stack):
    """systemId -> number of CES metadata requests for it."""
    counts = {}
    for request in stack.ces_requests():
        if request["path"].endswith("/metadata"):
            for system_id in request["systemIds"]:
                counts[system_id] = counts.get(system_id, 0) + 1
    return counts


class RegistrationTest(unittest.TestCase):
    def test_enrolled_systems_registered_with_metadata_and_coupling(self):
        # Pick, from the fleet's own metadata, one DC and one AC system that CES will report with
        # mixed acPVPowerRatings, one pure DC and one pure AC system, and one system left out of
        # Concerto (it streams telemetry all the same).
        fleet = Stack(self, scenario=live_scenario(**SCENARIO)).fleet_systems()
        dc = [i for i, s in enumerate(fleet) if not is_ac(s)]
        ac = [i for i, s in enumerate(fleet) if is_ac(s)]
        self.assertGreaterEqual(len(dc), 2, "scenario precondition: two DC systems")
        self.assertGreaterEqual(len(ac), 2, "scenario precondition: two AC systems")
        mixed_idx = {dc[0], ac[0]}
        left_out = (set(range(len(fleet))) - mixed_idx - {dc[1], ac[1]}).pop()
        faults = "".join(f'\n[[fault]]\nat_s = 0\nsystem = {i}\nkind = "mixed_ratings"\n' for i in sorted(mixed_idx))
        stack = Stack(self, scenario=live_scenario(**SCENARIO, faults=faults), auto_commissioning=True).start()
        systems = stack.fleet_systems()
        self.assertEqual([s["systemId"] for s in systems], [s["systemId"] for s in fleet])
        mixed = {systems[i]["systemId"] for i in mixed_idx}
        enrolled = [s for i, s in enumerate(systems) if i != left_out]
        stranger = systems[left_out]["systemId"]

        for s in enrolled:
            stack.enroll(s["systemId"], name="Concerto name of " + s["systemId"][:8])
        # A SYSTEM of another adapter, and one of ours that CES does not know.
        foreign = stack.enroll("foreign-system-0001", adapter_name="some-other-adapter")
        unknown = stack.enroll("not-in-ces-0001")
        stack.start_fleet()

        ours = {s["systemId"] for s in enrolled} | {unknown["remoteId"]}
        wait_for(lambda: {d["remote_id"] for d in stack.devices()} == ours, "the enrolled systems registered")
        wait_for(lambda: all(stack.device(s["systemId"])["metadata_fetched_at"] for s in enrolled),
                 "metadata of every enrolled system")
        # Telemetry of the system left out of Concerto goes on arriving (now that every enrolled
        # system is matched by its inverter, it is the only unmatched one) and is dropped.
        unmatched = metric(stack.metrics(), "pwrcell_telemetry_records_total", outcome="unmatched")
        wait_for(lambda: metric(stack.metrics(), "pwrcell_telemetry_records_total", outcome="unmatched")
                 >= unmatched + 3, "records of the unenrolled system dropped")
        wait_all_commissioned(stack, enrolled)

        concerto_ids = {a["remoteId"]: a["id"] for a in stack.assets("SYSTEM")}
        devices = {d["remote_id"]: d for d in stack.devices()}
        self.assertEqual(set(devices), ours, "only this adapter's SYSTEM assets; never from telemetry or CES")
        self.assertNotIn(foreign["remoteId"], devices)
        self.assertNotIn(stranger, devices)

        requested = metadata_requests(stack)
        for s in enrolled:
            sid = s["systemId"]
            with self.subTest(system=sid):
                d = devices[sid]
                self.assertEqual(d["concerto_asset_id"], concerto_ids[sid])
                self.assertEqual(d["name"], "Concerto name of " + sid[:8])
                self.assertFalse(d["is_simulated"])
                self.assertIsNotNone(d["registered_at"])
                self.assertGreaterEqual(requested.get(sid, 0), 1, "CES metadata requested")
                m = d["metadata"]
                self.assertEqual(m["site_id"], s["siteId"])
                self.assertEqual(m["site_name"], s["siteName"])
                self.assertEqual(m["site_meter_id"], s["siteMeter"]["id"] if s.get("siteMeter") else None)
                self.assertEqual([b["rcpn"] for b in m["batteries"]], [b["rcpn"] for b in s["batteries"]])
                self.assertEqual([p["rcpn"] for p in m["pv_links"]], [p["rcpn"] for p in s["pvLinks"]])
                self.assertEqual(len(m["inverters"]), 2 if sid in mixed else 1, "CES's inverters")
                self.assertEqual(m["inverters"][0]["rcpn"], s["inverters"][0]["rcpn"])
                self.assertEqual(m["inverters"][0]["ac_pv_power_rating_kw"],
                                 s["inverters"][0]["inverterSetting"]["acPVPowerRating"])
                self.assertEqual(d["inverter_rcpns"], [i["rcpn"] for i in m["inverters"]], "telemetry is matched by them")
                self.assertEqual(d["inverter_rcpns"][0], s["inverters"][0]["rcpn"])
                self.assertEqual(d["coupling"], expected_coupling(s, sid in mixed))
                self.assertEqual(d["system_status"], "SUCCESS")
        self.assertEqual(sorted(devices[systems[i]["systemId"]]["coupling"] for i in mixed_idx), ["AC", "AC"])
        self.assertEqual(devices[systems[dc[1]]["systemId"]]["coupling"], "DC")
        self.assertEqual(devices[systems[ac[1]]["systemId"]]["coupling"], "AC")

        # The system CES does not know stays registered (Concerto decides), without metadata.
        u = devices[unknown["remoteId"]]
        self.assertIsNone(u["metadata"])
        self.assertEqual(u["coupling"], "UNKNOWN")
        self.assertGreaterEqual(requested.get(unknown["remoteId"], 0), 1)
        self.assertNotIn(stranger, requested, "no CES call for a system Concerto does not list")
        self.assertNotIn(foreign["remoteId"], requested)

        # Mixed ratings: an error names the system and each inverter's rating; no other system.
        log = stack.adapter.log()
        error_lines = [line for line in log.splitlines() if "mixed acPVPowerRating" in line]
        for sid in mixed:
            line = next((line for line in error_lines if sid in line), None)
            self.assertIsNotNone(line, f"mixed-ratings error for {sid}")
            self.assertIn("error", line.lower())
            for inverter in devices[sid]["metadata"]["inverters"]:
                self.assertIn(inverter["rcpn"], line)
        self.assertFalse([line for line in error_lines if not any(sid in line for sid in mixed)])
        self.assertGreaterEqual(metric(stack.metrics(), "pwrcell_coupling_errors_total"), len(mixed))

        # An operator renames a system in Concerto: the record follows; it is not registered anew.
        renamed = enrolled[-1]["systemId"]
        before = stack.device(renamed)
        stack.update_asset(concerto_ids[renamed], name="Renamed by the operator")
        wait_for(lambda: stack.device(renamed)["name"] == "Renamed by the operator", "the new name in the record")
        self.assertEqual(stack.device(renamed)["registered_at"], before["registered_at"])
        self.assertEqual(metric(stack.metrics(), "pwrcell_devices_registered_total"), len(ours))

        # The coupling reaches Concerto: each INVERTER's acCoupled (mixed ones included).
        inverters = {a["remoteId"]: a for a in stack.assets("INVERTER")}
        for s in enrolled:
            self.assertIs(inverters[s["inverters"][0]["rcpn"]]["acCoupled"],
                          expected_coupling(s, s["systemId"] in mixed) == "AC", s["systemId"])

    def test_simulated_system_is_registered_without_ces(self):
        stack = Stack(self, scenario=live_scenario(systems=1, seed=5), auto_commissioning=False).start()
        (real,) = stack.fleet_systems()
        stack.enroll(real["systemId"])
        simulated = stack.enroll("sim-e2e-0001", name="Test bench", simulated=True, rated_power=11.4)
        sim_id = simulated["remoteId"]

        wait_for(lambda: (d := stack.device(sim_id)) and d["metadata_fetched_at"], "simulated system registered")
        # Several CES status polls of the real system go by; the simulated one is never asked for.
        wait_for(lambda: sum(1 for r in stack.ces_requests() if r["path"].endswith("/status")
                             and real["systemId"] in r["systemIds"]) >= 3, "three CES status polls")
        asked = {i for r in stack.ces_requests() for i in r["systemIds"]}
        self.assertIn(real["systemId"], asked)
        self.assertNotIn(sim_id, asked, "no CES call for a simulated system")

        d = stack.device(sim_id)
        self.assertTrue(d["is_simulated"])
        self.assertEqual(d["name"], "Test bench")
        self.assertEqual(d["concerto_asset_id"], simulated["id"])
        self.assertEqual(d["rated_power_kw"], 11.4)
        self.assertEqual(d["coupling"], "DC", "simulated systems are DC-coupled")
        m = d["metadata"]
        self.assertEqual(len(m["inverters"]), 1)
        self.assertEqual(d["inverter_rcpns"], [m["inverters"][0]["rcpn"]])
        self.assertGreaterEqual(len(m["batteries"]), 1)
        self.assertEqual(d["commissioning"]["state"], "NOT_REQUESTED")


if __name__ == "__main__":
    unittest.main()
