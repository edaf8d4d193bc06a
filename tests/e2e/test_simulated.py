"""Simulated systems end to end (SPEC section 3, "Simulated systems"; issue #5).

A Concerto SYSTEM asset marked `simulated` is served by the adapter itself: metadata synthesized
from the remoteId (and ratedPower) by the fleet model, telemetry synthesized every
[simulated] record_interval_s (1 s here) and sent through the telemetry processor, no CES call.

"Nothing more happens" is never judged by sleeping: a second simulated system that stays
enrolled (the "clock") keeps producing one record per interval, and its points in Concerto show
how many synthesis rounds have passed since the moment we look from.
"""

import calendar
import json
import time
import unittest

from harness import Stack, http, live_scenario, metric, wait_for

INVERTER_METRICS = {"REAL_POWER", "REACTIVE_POWER", "ENERGY_IMPORTED", "ENERGY_EXPORTED", "SOURCE_MAX_POWER",
                    "SINK_MAX_POWER"}
BATTERY_METRICS = {"REAL_POWER", "STATE_OF_CHARGE", "STATE_OF_HEALTH", "VOLTAGE", "ENERGY_IMPORTED",
                   "ENERGY_EXPORTED"}
PV_METRICS = {"REAL_POWER", "VOLTAGE", "ENERGY_EXPORTED"}
METER_METRICS = {"REAL_POWER", "ENERGY_IMPORTED", "ENERGY_EXPORTED", "VOLTAGE"}
SYSTEM_METRICS = {"INVERTER_STATE", "SYSTEM_MODE"}
ENERGY_METRICS = {"ENERGY_IMPORTED", "ENERGY_EXPORTED"}
# The PWRcell inverter ratings (XVT076A03, XVT114G03), kW: what a system without ratedPower gets.
PWRCELL_RATINGS_KW = {7.6, 11.4}


def epoch(timestamp):
    return calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))


def ces_calls_for(requests, remote_id):
    """The CES API requests (ces-sim log) that concern `remote_id`: its metadata or a status batch."""
    return [r for r in requests if remote_id in (r.get("systemIds") or []) or f"/{remote_id}/" in r["path"]]


def device_where(stack, remote_id, condition):
    def check():
        device = stack.device(remote_id)
        return device if device is not None and condition(device) else None
    return check


class Clock:
    """Counts the synthesis rounds of a simulated system that stays enrolled, by its points."""

    def __init__(self, stack, system_asset_id):
        self.stack, self.asset_id = stack, system_asset_id

    def records(self):
        return self.stack.telemetry_count(asset_id=self.asset_id, metric_name="INVERTER_STATE")

    def advance(self, rounds, timeout=30):
        target = self.records() + rounds
        wait_for(lambda: self.records() >= target, f"{rounds} more records of the clock system", timeout)


class SimulatedSystemsTest(unittest.TestCase):
    maxDiff = None

    def test_registered_commissioned_online_forwarded_then_removed(self):
        stack = Stack(self, scenario=live_scenario(systems=1, ac_coupled_fraction=0.0)).start()
        real_id = stack.fleet_systems()[0]["systemId"]
        stack.enroll(real_id)  # a real system beside them (no fleet-sim: it stays OFFLINE)
        # A remoteId whose fleet-model system has PV links and a site meter (5 % of systems have no PV,
        # 10 % no meter), so that every channel is exercised.
        sim = stack.enroll("SIM-0001", simulated=True, rated_power=9.6)
        clock_asset = stack.enroll("SIM-E2E-CLOCK", simulated=True)
        sim_id, clock_id = sim["remoteId"], clock_asset["remoteId"]

        # Registered and commissioned like a real system: site, inverter, batteries, PV links, meter.
        device = wait_for(device_where(stack, sim_id, lambda d: d["commissioning"]["state"] == "DONE"),
                          "the simulated system commissioned")
        self.assertTrue(device["is_simulated"])
        self.assertEqual(device["kind"], "simulated")
        self.assertEqual(device["coupling"], "DC")
        self.assertIsNone(device["system_status"])  # never asked CES
        md = device["metadata"]
        self.assertEqual(md["system_id"], sim_id)
        self.assertEqual(len(md["inverters"]), 1)
        self.assertEqual(md["inverters"][0]["rated_power_w"], 9600)  # Concerto's ratedPower, respected
        self.assertFalse(md["inverters"][0]["ac_pv_power_rating_kw"])  # DC-coupled
        self.assertGreater(len(md["batteries"]), 0)
        self.assertGreater(len(md["pv_links"]), 0, "pick a remoteId with PV links if the fleet model changed")
        self.assertTrue(md["site_meter_id"], "pick a remoteId with a site meter if the fleet model changed")
        self.assertEqual(device["inverter_rcpns"], [md["inverters"][0]["rcpn"]])

        assets = {a["id"]: a for a in stack.assets()}
        system = assets[sim["id"]]
        (site,) = [s for s in stack.sites() if s["remoteId"] == md["site_id"]]
        self.assertEqual(system["siteId"], site["id"])
        self.assertEqual(device["site"]["site_id"], site["id"])
        (inverter,) = [a for a in assets.values() if a["assetType"] == "INVERTER" and a["parentId"] == system["id"]]
        self.assertEqual((inverter["remoteId"], inverter["siteId"], inverter["ratedPower"], inverter["acCoupled"]),
                         (md["inverters"][0]["rcpn"], site["id"], 9.6, False))
        self.assertEqual(device["inverters"], [{"asset_id": inverter["id"], "remote_id": inverter["remoteId"]}])

        def children(asset_type, parent):
            return {a["remoteId"]: a["id"] for a in assets.values()
                    if a["assetType"] == asset_type and a["parentId"] == parent}

        batteries = children("BATTERY", inverter["id"])
        pvs = children("PHOTOVOLTAIC", inverter["id"])
        self.assertEqual(set(batteries), {b["rcpn"] for b in md["batteries"]})
        self.assertEqual(set(pvs), {p["rcpn"] for p in md["pv_links"]})
        self.assertEqual({b["remote_id"]: b["asset_id"] for b in device["batteries"]}, batteries)
        self.assertEqual({p["remote_id"]: p["asset_id"] for p in device["photovoltaics"]}, pvs)
        meters = children("SITE_METER", system["id"])
        self.assertEqual(set(meters), {md["site_meter_id"]} if md["site_meter_id"] else set())

        # The clock system has no ratedPower: it gets one of the PWRcell ratings.
        clock_device = wait_for(device_where(stack, clock_id, lambda d: d["commissioning"]["state"] == "DONE"),
                                "the clock system commissioned")
        self.assertIn(clock_device["metadata"]["inverters"][0]["rated_power_w"] / 1000, PWRCELL_RATINGS_KW)

        # ONLINE, in the device table and in Concerto.
        wait_for(device_where(stack, sim_id, lambda d: d["remote_state"] == "ONLINE"), "the simulated system ONLINE")
        wait_for(lambda: [h for h in stack.remote_states(asset_id=system["id"])][-1]["state"] == "ONLINE",
                 "Concerto told the simulated system is ONLINE")
        clock = Clock(stack, clock_asset["id"])

        # Points with plausible values on every component.
        wait_for(lambda: stack.telemetry_count(asset_id=system["id"], metric_name="INVERTER_STATE") >= 4,
                 "four records of the simulated system in Concerto")
        ours = {system["id"]: SYSTEM_METRICS, inverter["id"]: INVERTER_METRICS,
                **{i: BATTERY_METRICS for i in batteries.values()}, **{i: PV_METRICS for i in pvs.values()},
                **{i: METER_METRICS for i in meters.values()}}
        points = [p for p in stack.telemetry() if p["assetId"] in ours]
        series = {}
        for p in points:
            series.setdefault((p["assetId"], p["metric"]), []).append((epoch(p["timestamp"]), p["value"]))
        for asset_id, metrics in ours.items():
            self.assertEqual({m for (a, m) in series if a == asset_id}, metrics, f"metrics of asset {asset_id}")
        now = time.time()
        for (asset_id, name), values in series.items():
            stamps = [t for t, _ in values]
            self.assertEqual(len(stamps), len(set(stamps)), f"one point per record: {asset_id} {name}")
            self.assertTrue(all(now - 120 < t < now + 5 for t in stamps), f"recent timestamps: {asset_id} {name}")
            if name in ENERGY_METRICS:
                ordered = [v for _, v in sorted(values)]
                self.assertEqual(ordered, sorted(ordered), f"lifetime register never falls: {asset_id} {name}")
                self.assertTrue(all(v >= 0 for v in ordered))
        sys_stamps = sorted(t for t, _ in series[(system["id"], "INVERTER_STATE")])
        self.assertEqual(sys_stamps, list(range(sys_stamps[0], sys_stamps[-1] + 1)),
                         "one record per 1 s interval, none missing")

        def values(asset_ids, name):
            return [v for a in asset_ids for _, v in series[(a, name)]]

        battery_kw = max(b["rated_power_w"] for b in md["batteries"]) / 1000
        pv_kw = max(p["rated_power_w"] for p in md["pv_links"]) / 1000
        self.assertTrue(all(0 <= v <= 100 for v in values(batteries.values(), "STATE_OF_CHARGE")))
        self.assertTrue(all(70 <= v <= 100 for v in values(batteries.values(), "STATE_OF_HEALTH")))
        self.assertTrue(all(300 <= v <= 500 for v in values(batteries.values(), "VOLTAGE")), "battery bus volts")
        self.assertTrue(all(abs(v) <= battery_kw + 1e-6 for v in values(batteries.values(), "REAL_POWER")))
        self.assertTrue(all(-1e-6 <= v <= pv_kw + 1e-6 for v in values(pvs.values(), "REAL_POWER")))
        self.assertTrue(all(v == 0 or 250 <= v <= 500 for v in values(pvs.values(), "VOLTAGE")), "PV link volts")
        self.assertTrue(all(abs(v) <= 9.6 + 1e-6 for v in values([inverter["id"]], "REAL_POWER")))
        self.assertEqual(set(values([inverter["id"]], "SOURCE_MAX_POWER")), {9.6})
        self.assertTrue(all(0 <= v <= 9.6 + 1e-6 for v in values([inverter["id"]], "SINK_MAX_POWER")))
        self.assertTrue(all(not 0x7000 <= v <= 0x7FFF for v in values([system["id"]], "INVERTER_STATE")))
        if meters:
            self.assertTrue(all(216 <= v <= 264 for v in values(meters.values(), "VOLTAGE")), "grid volts")
            self.assertTrue(all(abs(v) <= 50 for v in values(meters.values(), "REAL_POWER")), "household kW")
        # DC-coupled: what the inverter puts out comes from the PV links and the batteries (at the
        # records whose every channel had its asset: the first may predate commissioning).
        by_time = {}
        for asset_ids, sign in ((pvs.values(), 1), (batteries.values(), 1), ([inverter["id"]], -1)):
            for a in asset_ids:
                for t, v in series[(a, "REAL_POWER")]:
                    by_time.setdefault(t, []).append(sign * v)
        whole = [t for t, parts in by_time.items() if len(parts) == len(pvs) + len(batteries) + 1]
        self.assertGreaterEqual(len(whole), 2)
        self.assertTrue(all(abs(sum(by_time[t])) <= 0.05 for t in whole), f"DC power balance {by_time}")

        # Every synthesized record forwarded: one INVERTER_STATE point per record and system.
        def forwarded_all():
            before = metric(stack.metrics(), "pwrcell_simulated_records_total")
            stored = sum(stack.telemetry_count(asset_id=a, metric_name="INVERTER_STATE")
                         for a in (system["id"], clock_asset["id"]))
            after = metric(stack.metrics(), "pwrcell_simulated_records_total")
            return before == stored == after and before > 0
        wait_for(forwarded_all, "every synthesized record stored in Concerto")
        self.assertEqual(stack.stats()["rejectedPoints"], 0)

        # No CES call for a simulated system, while the real one is asked (the log works).
        status_calls = lambda: [r for r in ces_calls_for(stack.ces_requests(), real_id)  # noqa: E731
                                if r["path"].endswith("/status")]
        seen = len(status_calls())
        wait_for(lambda: len(status_calls()) > seen, "one more CES status poll")
        requests = stack.ces_requests()
        self.assertTrue(any(r["path"].endswith(f"/{real_id}/metadata") for r in requests))
        self.assertEqual(ces_calls_for(requests, sim_id) + ces_calls_for(requests, clock_id), [])

        # Operators can tell them apart: device API, metrics, CLI.
        kinds = {d["remote_id"]: (d["kind"], d["is_simulated"]) for d in stack.devices()}
        self.assertEqual(kinds, {real_id: ("real", False), sim_id: ("simulated", True),
                                 clock_id: ("simulated", True)})
        status, body = http("GET", stack.admin_url + "/api/devices?simulated=true")
        self.assertEqual((status, sorted(d["remote_id"] for d in body["devices"])), (200, sorted([sim_id, clock_id])))
        wait_for(lambda: metric(stack.metrics(), "pwrcell_devices", kind="simulated", remote_state="ONLINE") == 2,
                 "pwrcell_devices{kind=simulated,remote_state=ONLINE} = 2")
        samples = stack.metrics()
        self.assertEqual(metric(samples, "pwrcell_devices", kind="simulated"), 2)
        self.assertEqual(metric(samples, "pwrcell_devices", kind="real"), 1)
        self.assertEqual(metric(samples, "pwrcell_devices_by_commissioning", kind="simulated", state="DONE"), 2)
        listed = stack.cli("devices", "list", "--db", stack.db_path())
        self.assertEqual(listed.returncode, 0, listed.stderr)
        header, *rows = listed.stdout.splitlines()
        column = header.split().index("SIM")
        sim_column = {row.split()[0]: row.split()[column] for row in rows if len(row.split()) > column}
        self.assertEqual(sim_column, {real_id: "no", sim_id: "yes", clock_id: "yes"})
        as_json = stack.cli("devices", "list", "--db", stack.db_path(), "--json")
        self.assertEqual({d["remote_id"]: d["is_simulated"] for d in json.loads(as_json.stdout)},
                         {real_id: False, sim_id: True, clock_id: True})

        # Removed from Concerto: deregistered, and no more points for it.
        stack.delete_asset(system["id"])
        wait_for(lambda: stack.device(sim_id) is None, "the removed system gone from the device table")
        clock.advance(2)  # records produced before the removal have landed by now
        component_ids = [inverter["id"], *batteries.values(), *pvs.values(), *meters.values()]
        baseline = ({a: stack.telemetry_count(asset_id=a) for a in component_ids}, stack.stats()["rejectedPoints"])
        clock.advance(3)
        after = ({a: stack.telemetry_count(asset_id=a) for a in component_ids}, stack.stats()["rejectedPoints"])
        self.assertEqual(after, baseline, "points kept arriving for a removed simulated system")
        self.assertEqual(ces_calls_for(stack.ces_requests(), sim_id), [])
        self.assertEqual(metric(stack.metrics(), "pwrcell_devices", kind="simulated"), 1)

    def test_metadata_is_synthesized_the_same_on_every_run(self):
        enrolments = [("SIM-DET-0001", None), ("SIM-DET-0002", 9.6), ("a7f3c2e0-5b1d-4c8e-9f2a-0123456789ab", None)]

        def one_run():
            stack = Stack(self, scenario=live_scenario(systems=1), auto_commissioning=False).start()
            for remote_id, rated in enrolments:
                stack.enroll(remote_id, simulated=True, rated_power=rated)
            devices = {}
            for remote_id, _ in enrolments:
                devices[remote_id] = wait_for(device_where(stack, remote_id, lambda d: d["metadata"]),
                                              f"synthesized metadata of {remote_id}")
            # Auto-commissioning off: shown as awaiting commissioning, nothing written to Concerto.
            for d in devices.values():
                self.assertEqual(d["commissioning"]["state"], "NOT_REQUESTED")
                self.assertIn("awaiting commissioning", d["commissioning"]["reason"])
            self.assertEqual({a["assetType"] for a in stack.assets()}, {"SYSTEM"})
            self.assertEqual(stack.sites(), [])
            return stack, devices

        first_stack, first = one_run()
        self.assertEqual(first_stack.adapter.stop(), 0)
        first_stack.close()
        second_stack, second = one_run()  # fresh Concerto, fresh database, new adapter process

        for remote_id, rated in enrolments:
            a, b = first[remote_id], second[remote_id]
            self.assertEqual(a["metadata"], b["metadata"], remote_id)
            self.assertEqual((a["inverter_rcpns"], a["coupling"]), (b["inverter_rcpns"], b["coupling"]))
            rating_kw = a["metadata"]["inverters"][0]["rated_power_w"] / 1000
            if rated is None:
                self.assertIn(rating_kw, PWRCELL_RATINGS_KW)
            else:
                self.assertEqual(rating_kw, rated)
        rcpns = [{x["rcpn"] for part in ("inverters", "batteries", "pv_links") for x in first[r]["metadata"][part]}
                 for r, _ in enrolments]
        self.assertEqual(sum(len(s) for s in rcpns), len(set().union(*rcpns)), "RCP numbers differ between systems")

        # A new ratedPower in Concerto re-synthesizes the same system with the new rating.
        remote_id = enrolments[0][0]
        asset_id = second_stack.device(remote_id)["concerto_asset_id"]
        before = second[remote_id]["metadata"]
        new_rating = 7.6 if before["inverters"][0]["rated_power_w"] != 7600 else 11.4
        second_stack.update_asset(asset_id, ratedPower=new_rating)
        after = wait_for(device_where(second_stack, remote_id,
                                      lambda d: d["metadata"]["inverters"][0]["rated_power_w"] == new_rating * 1000),
                         "metadata with the new ratedPower")["metadata"]
        self.assertEqual(after["inverters"][0]["rcpn"], before["inverters"][0]["rcpn"])
        self.assertEqual((after["batteries"], after["pv_links"]), (before["batteries"], before["pv_links"]))
        self.assertEqual(ces_calls_for(second_stack.ces_requests(), remote_id), [])

    def test_turning_simulated_off_makes_it_a_real_system(self):
        stack = Stack(self, scenario=live_scenario(systems=1, ac_coupled_fraction=0.0),
                      auto_commissioning=False).start()
        remote_id = stack.fleet_systems()[0]["systemId"]  # CES knows it; fleet-sim can stream it
        asset = stack.enroll(remote_id, simulated=True)
        clock_asset = stack.enroll("SIM-FLIP-CLOCK", simulated=True)
        clock = Clock(stack, clock_asset["id"])
        wait_for(device_where(stack, remote_id, lambda d: d["remote_state"] == "ONLINE"),
                 "the simulated system ONLINE on synthesized telemetry")
        wait_for(device_where(stack, clock_asset["remoteId"], lambda d: d["remote_state"] == "ONLINE"),
                 "the clock system ONLINE")
        self.assertEqual(ces_calls_for(stack.ces_requests(), remote_id), [])

        stack.update_asset(asset["id"], simulated=False)  # the operator, in Concerto
        device = wait_for(device_where(stack, remote_id, lambda d: d["kind"] == "real"),
                          "the system real in the device table")
        self.assertFalse(device["is_simulated"])
        # CES calls start: metadata, then status polls.
        wait_for(lambda: any(r["path"].endswith(f"/{remote_id}/metadata")
                             for r in ces_calls_for(stack.ces_requests(), remote_id)), "a CES metadata call")
        wait_for(lambda: any(r["path"].endswith("/status") for r in ces_calls_for(stack.ces_requests(), remote_id)),
                 "a CES status call")
        wait_for(device_where(stack, remote_id, lambda d: d["system_status"] == "SUCCESS" and d["metadata"]),
                 "CES status and metadata stored")

        # Synthesis stops: while the clock system goes on, no record for this one.
        clock.advance(2)
        baseline = stack.telemetry_count(asset_id=asset["id"])
        clock.advance(3)
        self.assertEqual(stack.telemetry_count(asset_id=asset["id"]), baseline,
                         "synthesized points after the system became real")
        device = wait_for(device_where(stack, remote_id, lambda d: d["remote_state"] == "OFFLINE"),
                          "the system OFFLINE (real, and no telemetry from the stream yet)")
        self.assertIn("no telemetry", device["remote_state_reason"])
        samples = stack.metrics()
        self.assertEqual(metric(samples, "pwrcell_devices", kind="real"), 1)
        self.assertEqual(metric(samples, "pwrcell_devices", kind="simulated"), 1)

        # Real telemetry (the stream) brings it back, matched by the RCP number CES gave.
        stack.start_fleet()
        wait_for(device_where(stack, remote_id, lambda d: d["remote_state"] == "ONLINE"),
                 "the real system ONLINE on streamed telemetry")
        wait_for(lambda: stack.telemetry_count(asset_id=asset["id"]) > baseline, "streamed points in Concerto")


if __name__ == "__main__":
    unittest.main()
