"""Telemetry end to end (SPEC sections 3.1 and 5): EnergyRecordSets posted to the adapter's ingest
endpoint arrive in concerto-sim as points on the right assets, with the contract's metrics, units
(W -> kW, W·s -> kWh), signs and the records' own timestamps; records of systems that are not
enrolled are counted and dropped.

Expected points are computed by records.py from the records themselves (decoded with protoc
against the contract) and from the assets concerto-sim holds, never from the adapter."""

import json
import os
import subprocess
import unittest

from harness import ADAPTER, FLEET_SIM, Stack, live_scenario, metric, wait_for
from records import (concerto_roles, compare_points, decode_record, encode_record, expected_points, iso,
                     parse_iso, post_record, read_file_sink, series_of, wait_for_points)

# seed 4, 3 systems, these fractions: a DC-coupled system with PV links and a site meter, an
# AC-coupled one without a meter and a DC-coupled one without a meter (checked in the test).
SCENARIO = dict(systems=3, seed=4, ac_coupled_fraction=0.34, site_meter_fraction=0.67)


def is_ac(system):
    return any(i["inverterSetting"]["acPVPowerRating"] for i in system["inverters"])


class TelemetryTest(unittest.TestCase):
    def start(self, enroll=None, **scenario):
        stack = Stack(self, scenario=live_scenario(**{**SCENARIO, **scenario})).start()
        systems = stack.fleet_systems()
        enrolled = [s for i, s in enumerate(systems) if enroll is None or i in enroll]
        for s in enrolled:
            stack.enroll(s["systemId"], s["siteName"])
        wait_for(lambda: all((d := stack.device(s["systemId"])) and d["commissioning"]["state"] == "DONE"
                             for s in enrolled), "commissioning DONE for every enrolled system", timeout=60)
        return stack, systems, enrolled

    def fleet_records(self, stack, duration_s=2):
        """Runs fleet-sim into a file sink (fast clock) and returns its records, in file order."""
        path = os.path.join(stack.dir, "records.bin")
        run = subprocess.run([FLEET_SIM, "--scenario", stack.scenario_path, "--sink", "file:" + path, "--speed",
                              "1000", "--duration", str(duration_s)], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        return read_file_sink(path)

    def processed(self, stack, decoded, unmatched=0):
        samples = stack.metrics()
        return (metric(samples, "pwrcell_telemetry_records_total", outcome="decoded") >= decoded
                and metric(samples, "pwrcell_telemetry_records_total", outcome="unmatched") >= unmatched)

    def test_fleet_records_become_points_on_the_right_assets(self):
        stack, systems, _ = self.start()
        kinds = {(is_ac(s), "siteMeter" in s, bool(s["pvLinks"])) for s in systems}
        self.assertIn((False, True, True), kinds, "fleet lacks a DC system with PV and a meter")
        self.assertIn((True, False, False), kinds, "fleet lacks an AC-coupled system")
        self.assertIn((False, False, True), kinds, "fleet lacks a system without a site meter")

        blobs = self.fleet_records(stack)
        self.assertEqual(len(blobs), 3 * len(systems))  # k = 0, 1, 2 for every system
        by_rcpn = {s["inverters"][0]["rcpn"]: s for s in systems}
        roles = {s["systemId"]: concerto_roles(stack, s["systemId"]) for s in systems}
        for s in systems:  # commissioning gave every component an asset
            r = roles[s["systemId"]]
            self.assertIsNotNone(r.inverter)
            self.assertEqual(set(r.batteries), {b["rcpn"] for b in s["batteries"]})
            self.assertEqual(set(r.photovoltaics), {p["rcpn"] for p in s["pvLinks"]})
            self.assertEqual(r.site_meter is not None, "siteMeter" in s)

        expected, unmapped, newest = {}, 0, {}
        ac_records = 0
        for blob in blobs:
            record = decode_record(blob)
            system = by_rcpn[record["inverterId"][0]]
            points, n = expected_points(record, roles[system["systemId"]])
            # Every record of a fleet-sim system yields the same series (what test_resilience counts).
            self.assertEqual({(a, m) for a, m, _ in points}, series_of(roles[system["systemId"]]))
            expected.update(points)
            unmapped += n
            ac_records += is_ac(system)
            ts = max(r["currentTimestamp"][0] for r in record["energyRecord"])
            newest[system["systemId"]] = max(newest.get(system["systemId"], 0), ts)
        # The only channels without an asset are the AC-coupled systems' GENERATION_AC (no PV link).
        self.assertEqual(unmapped, ac_records)
        before = stack.metrics()

        for blob in blobs:
            post_record(stack, blob)
        wait_for(lambda: self.processed(stack, decoded=len(blobs)), "every record processed")
        wait_for_points(self, stack, expected)

        samples = stack.metrics()
        delta = lambda name, **labels: metric(samples, name, **labels) - metric(before, name, **labels)  # noqa: E731
        self.assertEqual(delta("pwrcell_telemetry_points_total"), len(expected))
        self.assertEqual(delta("pwrcell_telemetry_unmapped_channels_total"), unmapped)
        self.assertEqual(delta("pwrcell_telemetry_records_total", outcome="unmatched"), 0)
        # last_heard_at is the newest record time of each system.
        for system_id, ts in newest.items():
            self.assertEqual(parse_iso(stack.device(system_id)["last_heard_at"]), ts)

        # The offline dry run (`telemetry map`) agrees with what went through `serve`.
        system = next(s for s in systems if "siteMeter" in s)
        device_path = os.path.join(stack.dir, "device.json")
        record_path = os.path.join(stack.dir, "one.bin")
        with open(device_path, "w") as f:
            json.dump(stack.device(system["systemId"]), f)
        blob = next(b for b in blobs if decode_record(b)["inverterId"][0] == system["inverters"][0]["rcpn"])
        with open(record_path, "wb") as f:
            f.write(blob)
        run = stack.keep_output("telemetry-map", subprocess.run(
            [ADAPTER, "telemetry", "map", "--device", device_path, record_path, "--json"], capture_output=True,
            text=True, timeout=60))
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        dry = json.loads(run.stdout)
        record_points, record_unmapped = expected_points(decode_record(blob), roles[system["systemId"]])
        compare_points(self, dry["points"], record_points)
        self.assertEqual(dry["unmapped_channels"], record_unmapped)

    def test_units_signs_and_fractional_timestamps_of_a_handmade_record(self):
        stack, systems, _ = self.start(enroll={0})
        system = systems[0]
        self.assertTrue("siteMeter" in system and system["pvLinks"] and len(system["batteries"]) >= 2)
        rcpn = system["inverters"][0]["rcpn"]
        b1, b2 = system["batteries"][0]["rcpn"], system["batteries"][1]["rcpn"]
        pv = system["pvLinks"][0]["rcpn"]
        t1, t2 = 1795000000.25, 1795000001.5  # two records in one set, fractional seconds
        text = f'''
inverterId: "{rcpn}"
energyRecord {{
  currentTimestamp: {t1} previousTimestamp: {t1 - 1} sysMode: SELF_SUPPLY inverterState: 2080
  channel {{ channel: 1 channelType: NET deviceId: "{rcpn}" realPower_W: -1234 realPower_Wf: -1234
            importedEnergy_Ws: 7200000 exportedEnergy_Ws: 1800000 voltage_V: 240.5 }}
  channel {{ channel: 2 channelType: INVERTER_OUTPUT deviceId: "{rcpn}" deviceType: INVERTER
            realPower_W: -500 realPower_Wf: -500 reactivePower_VAR: -120 importedEnergy_Ws: 3600000000
            exportedEnergy_Ws: 900000 realPowerSourceMax_W: 7600 realPowerSinkMax_W: 3375 }}
  channel {{ channel: 10 channelType: STORAGE deviceId: "{b1}" deviceType: BATTERY realPower_W: 1500
            realPower_Wf: 1500 soc: 57.5 soh: 98.25 voltage_V: 380.5 importedEnergy_Ws: 36000
            exportedEnergy_Ws: 72000 }}
  channel {{ channel: 11 channelType: STORAGE deviceId: "{b2}" deviceType: BATTERY realPower_W: -800
            realPower_Wf: -800 soc: 12.25 soh: 100 voltage_V: 362 importedEnergy_Ws: 18000000
            exportedEnergy_Ws: 1 }}
  channel {{ channel: 20 channelType: GENERATION deviceId: "{pv}" deviceType: SOLAR realPower_W: 2000
            realPower_Wf: 2000 voltage_V: 350.25 exportedEnergy_Ws: 10800000 }}
  channel {{ channel: 40 channelType: CONSUMPTION deviceId: "{rcpn}" realPower_W: 900 }}
}}
energyRecord {{
  currentTimestamp: {t2} previousTimestamp: {t1} sysMode: CLEAN_BACKUP inverterState: 28688
  channel {{ channel: 1 channelType: NET deviceId: "{rcpn}" realPower_W: 4321 realPower_Wf: 4321
            importedEnergy_Ws: 7215555 exportedEnergy_Ws: 1800000 voltage_V: 239 }}
}}
'''
        blob = encode_record(text)
        roles = concerto_roles(stack, system["systemId"])
        expected, unmapped = expected_points(decode_record(blob), roles)
        self.assertEqual(unmapped, 1)  # CONSUMPTION: Concerto has no asset for it
        # Spelled out, so that the independent mapping itself is checked against the contract.
        want = {
            (roles.site_meter, "REAL_POWER", iso(t1)): -1.234,          # < 0: exporting to the grid
            (roles.site_meter, "ENERGY_IMPORTED", iso(t1)): 2.0,        # 7 200 000 W·s = 2 kWh
            (roles.site_meter, "ENERGY_EXPORTED", iso(t1)): 0.5,
            (roles.site_meter, "VOLTAGE", iso(t1)): 240.5,
            (roles.inverter, "REAL_POWER", iso(t1)): -0.5,
            (roles.inverter, "REACTIVE_POWER", iso(t1)): -0.12,
            (roles.inverter, "ENERGY_IMPORTED", iso(t1)): 1000.0,
            (roles.inverter, "ENERGY_EXPORTED", iso(t1)): 0.25,
            (roles.inverter, "SOURCE_MAX_POWER", iso(t1)): 7.6,
            (roles.inverter, "SINK_MAX_POWER", iso(t1)): 3.375,
            (roles.batteries[b1], "REAL_POWER", iso(t1)): 1.5,          # > 0: discharging
            (roles.batteries[b1], "STATE_OF_CHARGE", iso(t1)): 57.5,
            (roles.batteries[b1], "STATE_OF_HEALTH", iso(t1)): 98.25,
            (roles.batteries[b1], "VOLTAGE", iso(t1)): 380.5,
            (roles.batteries[b1], "ENERGY_IMPORTED", iso(t1)): 0.01,
            (roles.batteries[b1], "ENERGY_EXPORTED", iso(t1)): 0.02,
            (roles.batteries[b2], "REAL_POWER", iso(t1)): -0.8,         # < 0: charging
            (roles.batteries[b2], "STATE_OF_CHARGE", iso(t1)): 12.25,
            (roles.batteries[b2], "STATE_OF_HEALTH", iso(t1)): 100.0,
            (roles.batteries[b2], "VOLTAGE", iso(t1)): 362.0,
            (roles.batteries[b2], "ENERGY_IMPORTED", iso(t1)): 5.0,
            (roles.batteries[b2], "ENERGY_EXPORTED", iso(t1)): 1 / 3_600_000,
            (roles.photovoltaics[pv], "REAL_POWER", iso(t1)): 2.0,
            (roles.photovoltaics[pv], "VOLTAGE", iso(t1)): 350.25,
            (roles.photovoltaics[pv], "ENERGY_EXPORTED", iso(t1)): 3.0,
            (roles.system, "INVERTER_STATE", iso(t1)): 2080.0,
            (roles.system, "SYSTEM_MODE", iso(t1)): 2.0,                # SELF_SUPPLY
            (roles.site_meter, "REAL_POWER", iso(t2)): 4.321,           # > 0: importing
            (roles.site_meter, "ENERGY_IMPORTED", iso(t2)): 7215555 / 3_600_000,
            (roles.site_meter, "ENERGY_EXPORTED", iso(t2)): 0.5,
            (roles.site_meter, "VOLTAGE", iso(t2)): 239.0,
            (roles.system, "INVERTER_STATE", iso(t2)): 28688.0,
            (roles.system, "SYSTEM_MODE", iso(t2)): 3.0,                # CLEAN_BACKUP
        }
        self.assertEqual(iso(t1), "2026-11-18T11:06:40.25Z")  # date -u -d @1795000000
        self.assertEqual(iso(t2), "2026-11-18T11:06:41.5Z")
        self.assertEqual(set(expected), set(want))
        for key, value in want.items():
            self.assertAlmostEqual(expected[key].value, value, places=12, msg=key)

        before = stack.metrics()
        post_record(stack, blob)
        wait_for_points(self, stack, expected)
        samples = stack.metrics()
        self.assertEqual(metric(samples, "pwrcell_telemetry_unmapped_channels_total")
                         - metric(before, "pwrcell_telemetry_unmapped_channels_total"), 1)
        device = stack.device(system["systemId"])
        self.assertEqual(parse_iso(device["last_heard_at"]), t2)
        self.assertEqual(device["inverter_state"], 28688)  # the newest record's state

    def test_records_of_unknown_systems_are_counted_and_dropped(self):
        stack, systems, _ = self.start(enroll={0})
        known = systems[0]
        blobs = self.fleet_records(stack)
        stranger = encode_record('inverterId: "00FFFFFFFFF0" energyRecord { currentTimestamp: 1795000000 '
                                 'inverterState: 2080 channel { channel: 2 channelType: INVERTER_OUTPUT '
                                 'deviceId: "00FFFFFFFFF0" realPower_W: 100 } }')
        blobs.append(stranger)
        roles = concerto_roles(stack, known["systemId"])
        expected, unknown = {}, 0
        for blob in blobs:
            record = decode_record(blob)
            if record["inverterId"][0] == known["inverters"][0]["rcpn"]:
                expected.update(expected_points(record, roles)[0])
            else:
                unknown += 1
        self.assertEqual(unknown, len(blobs) - 3)  # systems 1 and 2 (not enrolled) + the stranger
        before = stack.metrics()
        for blob in blobs:
            post_record(stack, blob)  # the ingest stores them all: matching is the processor's job
        wait_for(lambda: self.processed(stack, decoded=3, unmatched=unknown), "every record processed")
        wait_for_points(self, stack, expected)
        samples = stack.metrics()
        self.assertEqual(metric(samples, "pwrcell_telemetry_records_total", outcome="unmatched")
                         - metric(before, "pwrcell_telemetry_records_total", outcome="unmatched"), unknown)
        self.assertEqual(metric(samples, "pwrcell_telemetry_points_total")
                         - metric(before, "pwrcell_telemetry_points_total"), len(expected))
        # No device record was made for the others.
        self.assertEqual([d["remote_id"] for d in stack.devices()], [known["systemId"]])
        for other in systems[1:]:
            self.assertEqual([a for a in stack.assets() if a["remoteId"] == other["systemId"]], [])


if __name__ == "__main__":
    unittest.main()
