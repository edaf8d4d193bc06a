"""fleet-sim as a program: records decode with protoc and keep the physics' invariants; the
scenario format, --print-fleet, the HTTP sink and signals behave as sim/scenarios/README.md says.

Environment: FLEET_SIM (the fleet-sim binary), PWRCELL_SOURCE_DIR (the repository root).
"""

import base64
import http.server
import json
import os
import re
import signal
import struct
import subprocess
import tempfile
import threading
import time
import unittest

FLEET_SIM = os.environ.get("FLEET_SIM", "")
SOURCE_DIR = os.environ.get("PWRCELL_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
PROTO_DIR = os.path.join(SOURCE_DIR, "contracts")
PROTO = os.path.join(PROTO_DIR, "energy_record_set.proto")

START = 1782014400  # 2026-06-21T04:00:00Z
INTERVAL = 300
DAY = 86400

SCENARIO = """
[scenario]
name = "fleet-sim-test"
seed = 4242
systems = 12
start = "2026-06-21T04:00:00Z"
interval_s = 300
speed = 60
ac_coupled_fraction = 0.4
site_meter_fraction = 0.6

[[fault]]
at_s = 3600
system = 1
kind = "silent"

[[fault]]
at_s = 7200
system = 1
kind = "resume"

[[fault]]
at_s = 1800
system = 2
kind = "inverter_error"

[[fault]]
at_s = 5400
system = 2
kind = "inverter_ok"

[[fault]]
at_s = 600
system = 4
kind = "ces_status"
status = "DISCONNECTED"

[[fault]]
at_s = 0
kind = "ces_5xx"
duration_s = 120
"""


def run(*args, **kwargs):
    return subprocess.run([FLEET_SIM, *args], capture_output=True, text=True, timeout=120, **kwargs)


def read_frames(path):
    """The file sink's format: 4-byte big-endian length, then the serialized record."""
    with open(path, "rb") as f:
        data = f.read()
    frames, i = [], 0
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        frames.append(data[i + 4 : i + 4 + length])
        i += 4 + length
    assert i == len(data), "trailing bytes in the file sink"
    return frames


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def parse_text_format(text):
    """protoc's text format -> nested dicts of lists ({"field": [value or dict, ...]})."""
    tokens = re.findall(r'"(?:\\.|[^"\\])*"|[{}:]|[^\s{}:"]+', text)
    pos = 0

    def message():
        nonlocal pos
        fields = {}
        while pos < len(tokens) and tokens[pos] != "}":
            name = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            if tokens[pos] == "{":
                pos += 1
                value = message()
                pos += 1  # "}"
            else:
                raw = tokens[pos]
                pos += 1
                if raw.startswith('"'):
                    value = bytes(raw[1:-1], "utf-8").decode("unicode_escape")
                elif re.fullmatch(r"-?\d+", raw):
                    value = int(raw)
                elif re.fullmatch(r"-?[\d.]+(e[-+]?\d+)?", raw, re.I):
                    value = float(raw)
                else:
                    value = raw  # an enum name
            fields.setdefault(name, []).append(value)
        return fields

    return message()


def decode_all(frames, workdir):
    """Decodes every record with ONE protoc run: a wrapper message with the records as field 1."""
    wrapper = os.path.join(workdir, "record_list.proto")
    with open(wrapper, "w") as f:
        f.write(
            'syntax = "proto3";\nimport "energy_record_set.proto";\n'
            "message RecordList { repeated pwrcell.ces.v1.EnergyRecordSet record = 1; }\n"
        )
    payload = b"".join(b"\x0a" + varint(len(frame)) + frame for frame in frames)
    out = subprocess.run(
        ["protoc", "-I", PROTO_DIR, "-I", workdir, "--decode", "RecordList", wrapper],
        input=payload,
        capture_output=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise AssertionError("protoc failed: " + out.stderr.decode())
    return parse_text_format(out.stdout.decode()).get("record", [])


def one(record, name, default=0):
    return record.get(name, [default])[0]


def solar_hour(t, longitude):
    return ((t % DAY) / 3600.0 + longitude / 15.0) % 24.0


class FleetSimTelemetryTest(unittest.TestCase):
    """A full simulated day of a 12-system fleet, written to a file at high speed."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.scenario = os.path.join(cls.tmp.name, "scenario.toml")
        with open(cls.scenario, "w") as f:
            f.write(SCENARIO)
        cls.out = os.path.join(cls.tmp.name, "records.bin")
        result = run("--scenario", cls.scenario, "--sink", "file:" + cls.out, "--speed", "1e7", "--duration", str(DAY))
        if result.returncode != 0:
            raise AssertionError("fleet-sim failed: " + result.stderr)
        cls.log = result.stderr
        cls.fleet = json.loads(run("--scenario", cls.scenario, "--print-fleet").stdout)
        cls.frames = read_frames(cls.out)
        cls.records = decode_all(cls.frames, cls.tmp.name)
        cls.by_inverter = {s["inverters"][0]["rcpn"]: s for s in cls.fleet["systems"]}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def records_of(self, index):
        rcpn = self.fleet["systems"][index]["inverters"][0]["rcpn"]
        return [r for r in self.records if one(r, "inverterId") == rcpn]

    def test_every_record_decodes_with_protoc(self):
        self.assertEqual(len(self.records), len(self.frames))
        # Also the exact command of the contract, on the first and the last record.
        for frame in (self.frames[0], self.frames[-1]):
            out = subprocess.run(
                ["protoc", "--decode", "pwrcell.ces.v1.EnergyRecordSet", "-I", PROTO_DIR, PROTO],
                input=frame,
                capture_output=True,
                timeout=60,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn(b"inverterId:", out.stdout)
            self.assertIn(b"channelType: INVERTER_OUTPUT", out.stdout)

    def test_one_record_per_system_per_interval_except_while_silent(self):
        ticks = DAY // INTERVAL + 1  # the start and every interval up to and including the end
        silent_ticks = (7200 - 3600) // INTERVAL  # at 3600 .. 6900
        self.assertEqual(len(self.records), 12 * ticks - silent_ticks)
        self.assertIn("0 rejected, 0 not delivered", self.log)
        for index in range(12):
            stamps = [one(one(r, "energyRecord"), "currentTimestamp") for r in self.records_of(index)]
            self.assertEqual(stamps, sorted(stamps))
            expected = [START + k * INTERVAL for k in range(ticks)]
            if index == 1:
                expected = [t for t in expected if not (START + 3600 <= t < START + 7200)]
            self.assertEqual(stamps, expected, f"system {index}")

    def test_record_header(self):
        for record in self.records:
            energy = one(record, "energyRecord")
            self.assertEqual(one(energy, "currentTimestamp") - one(energy, "previousTimestamp"), INTERVAL)
            self.assertEqual(one(energy, "sysMode"), "SELF_SUPPLY")
            self.assertIn(one(record, "inverterId"), self.by_inverter)

    def test_channels_match_the_metadata(self):
        for record in self.records:
            system = self.by_inverter[one(record, "inverterId")]
            channels = one(record, "energyRecord")["channel"]
            by_type = {}
            for ch in channels:
                by_type.setdefault(one(ch, "channelType"), []).append(ch)
            ac = system["inverters"][0]["inverterSetting"]["acPVPowerRating"] > 0
            self.assertEqual(len(by_type.get("NET", [])), 1 if "siteMeter" in system else 0)
            self.assertEqual(len(by_type["INVERTER_OUTPUT"]), 1)
            self.assertEqual([one(c, "deviceId") for c in by_type["STORAGE"]], [b["rcpn"] for b in system["batteries"]])
            self.assertEqual(
                [one(c, "deviceId") for c in by_type.get("GENERATION", [])], [p["rcpn"] for p in system["pvLinks"]]
            )
            self.assertEqual(len(by_type.get("GENERATION_AC", [])), 1 if ac else 0)
            if "NET" in by_type:
                self.assertEqual(one(by_type["NET"][0], "deviceId"), system["inverters"][0]["rcpn"])

    def test_pv_is_zero_at_night_and_positive_around_noon(self):
        night = noon = 0
        for record in self.records:
            system = self.by_inverter[one(record, "inverterId")]
            energy = one(record, "energyRecord")
            hour = solar_hour(one(energy, "currentTimestamp"), system["longitude"])
            pv = sum(
                one(c, "realPower_W")
                for c in energy["channel"]
                if one(c, "channelType") in ("GENERATION", "GENERATION_AC")
            )
            has_pv = bool(system["pvLinks"]) or system["inverters"][0]["inverterSetting"]["acPVPowerRating"] > 0
            if hour >= 22 or hour <= 2:
                night += 1
                self.assertEqual(pv, 0, f"PV at solar hour {hour:.1f}")
            if 11 <= hour <= 13 and has_pv and one(energy, "inverterState") == 2080:
                noon += 1
                self.assertGreater(pv, 0, f"no PV at solar hour {hour:.1f}")
        self.assertGreater(night, 100)
        self.assertGreater(noon, 100)

    def test_soc_stays_within_0_to_100(self):
        socs = [
            one(c, "soc")
            for r in self.records
            for c in one(r, "energyRecord")["channel"]
            if one(c, "channelType") == "STORAGE"
        ]
        self.assertTrue(socs)
        self.assertTrue(all(0 <= s <= 100 for s in socs), (min(socs), max(socs)))
        self.assertGreater(max(socs) - min(socs), 20, "the batteries should cycle over a day")

    def test_registers_only_grow_by_at_least_their_deltas(self):
        last = {}
        checked = 0
        for record in self.records:
            for ch in one(record, "energyRecord")["channel"]:
                key = (one(record, "inverterId"), one(ch, "channel"))
                for register, delta in (
                    ("importedEnergy_Ws", "deltaImportedEnergy_Ws"),
                    ("exportedEnergy_Ws", "deltaExportedEnergy_Ws"),
                ):
                    value = one(ch, register)
                    if (key, register) in last:
                        previous = last[(key, register)]
                        self.assertGreaterEqual(value, previous, key)
                        # Equal when consecutive; more after a silence (energy kept flowing unheard).
                        self.assertGreaterEqual(value - previous, one(ch, delta), key)
                        checked += 1
                    last[(key, register)] = value
        self.assertGreater(checked, 10000)

    def test_meter_balances_the_flows(self):
        # NET = load - PV - battery, and the inverter output is PV + battery (DC) or battery
        # (AC), so the load implied by each record must be a plausible household load.
        for record in self.records:
            channels = one(record, "energyRecord")["channel"]
            net = [one(c, "realPower_W") for c in channels if one(c, "channelType") == "NET"]
            if not net:
                continue
            pv = sum(one(c, "realPower_W") for c in channels if one(c, "channelType") in ("GENERATION", "GENERATION_AC"))
            battery = sum(one(c, "realPower_W") for c in channels if one(c, "channelType") == "STORAGE")
            load = net[0] + pv + battery
            self.assertGreater(load, 0)
            self.assertLess(load, 15000)

    def test_faults_show_in_the_telemetry(self):
        for record in self.records_of(2):
            energy = one(record, "energyRecord")
            t = one(energy, "currentTimestamp") - START
            expected = 28688 if 1800 <= t < 5400 else 2080
            self.assertEqual(one(energy, "inverterState"), expected, t)
        # CES-side faults do not touch the telemetry.
        for record in self.records_of(4):
            self.assertEqual(one(one(record, "energyRecord"), "inverterState"), 2080)

    def test_same_scenario_gives_the_same_bytes(self):
        again = os.path.join(self.tmp.name, "again.bin")
        result = run("--scenario", self.scenario, "--sink", "file:" + again, "--speed", "1e7", "--duration", str(DAY))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(read_frames(again), self.frames)


SECOND_INVERTER_SCENARIO = """
[scenario]
name = "two-inverters"
seed = 4242
systems = 3
start = "2026-06-21T04:00:00Z"
interval_s = 300
speed = 60
ac_coupled_fraction = 0.4
site_meter_fraction = 1.0

[[fault]]
at_s = 900
system = 0
kind = "second_inverter"

[[fault]]
at_s = 0
system = 1
kind = "mixed_ratings"

[[fault]]
at_s = 1800
system = 0
kind = "inverter_error"
inverter = 1

[[fault]]
at_s = 2700
system = 0
kind = "inverter_ok"
inverter = 1
"""


class FleetSimSecondInverterTest(unittest.TestCase):
    """Systems whose second inverter (second_inverter, mixed_ratings) streams its own records."""

    HOUR = 3600

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.scenario = os.path.join(cls.tmp.name, "scenario.toml")
        with open(cls.scenario, "w") as f:
            f.write(SECOND_INVERTER_SCENARIO)
        out = os.path.join(cls.tmp.name, "records.bin")
        result = run("--scenario", cls.scenario, "--sink", "file:" + out, "--speed", "1e7", "--duration",
                     str(cls.HOUR))
        if result.returncode != 0:
            raise AssertionError("fleet-sim failed: " + result.stderr)
        cls.fleet = json.loads(run("--scenario", cls.scenario, "--print-fleet").stdout)
        cls.records = decode_all(read_frames(out), cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def second_rcpn(self, index):
        first = self.fleet["systems"][index]["inverters"][0]["rcpn"]
        return format((int(first, 16) + 1) % (1 << 48), "012X")  # as ces-sim names it

    def records_from(self, rcpn):
        return [r for r in self.records if one(r, "inverterId") == rcpn]

    def stamps(self, records):
        return [one(one(r, "energyRecord"), "currentTimestamp") - START for r in records]

    def test_the_second_inverter_streams_from_its_faults_time(self):
        ticks = self.HOUR // INTERVAL + 1
        self.assertEqual(self.stamps(self.records_from(self.second_rcpn(0))),
                         [k * INTERVAL for k in range(ticks) if k * INTERVAL >= 900])
        self.assertEqual(self.stamps(self.records_from(self.second_rcpn(1))), [k * INTERVAL for k in range(ticks)])
        self.assertEqual(self.records_from(self.second_rcpn(2)), [], "no fault, no second inverter")
        for index in range(3):  # the first inverters are unchanged
            first = self.fleet["systems"][index]["inverters"][0]["rcpn"]
            self.assertEqual(self.stamps(self.records_from(first)), [k * INTERVAL for k in range(ticks)])
        self.assertEqual(len(self.records), 3 * ticks + (ticks - 3) + ticks)

    def test_its_record_carries_its_own_inverter_output_only(self):
        system = self.fleet["systems"][0]
        rcpn = self.second_rcpn(0)
        for record in self.records_from(rcpn):
            energy = one(record, "energyRecord")
            self.assertEqual(one(energy, "currentTimestamp") - one(energy, "previousTimestamp"), INTERVAL)
            self.assertEqual(one(energy, "sysMode"), "SELF_SUPPLY")
            (channel,) = energy["channel"]
            self.assertEqual(one(channel, "channelType"), "INVERTER_OUTPUT")
            self.assertEqual(one(channel, "deviceId"), rcpn)
            self.assertEqual(one(channel, "realPowerSourceMax_W"), system["inverters"][0]["ratedPowerW"])

    def test_inverter_faults_reach_the_inverter_they_name(self):
        for record in self.records_from(self.second_rcpn(0)):
            t = one(one(record, "energyRecord"), "currentTimestamp") - START
            self.assertEqual(one(one(record, "energyRecord"), "inverterState"), 28688 if 1800 <= t < 2700 else 2080, t)
        first = self.fleet["systems"][0]["inverters"][0]["rcpn"]
        for record in self.records_from(first):
            self.assertEqual(one(one(record, "energyRecord"), "inverterState"), 2080)

    def test_print_fleet_lists_the_faults_with_their_inverter(self):
        self.assertEqual([len(s["inverters"]) for s in self.fleet["systems"]], [1, 1, 1], "the fleet at its start")
        self.assertEqual([f.get("inverter") for f in self.fleet["faults"]], [None, None, 1, 1])
        self.assertEqual(self.fleet["faults"][0]["kind"], "second_inverter")


class FleetSimCommandLineTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def scenario(self, text):
        path = os.path.join(self.tmp.name, "s.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_print_fleet_shape(self):
        result = run("--scenario", self.scenario(SCENARIO), "--print-fleet")
        self.assertEqual(result.returncode, 0, result.stderr)
        fleet = json.loads(result.stdout)
        self.assertEqual(fleet["scenario"], "fleet-sim-test")
        self.assertEqual(fleet["start"], "2026-06-21T04:00:00Z")
        self.assertEqual(fleet["interval_s"], 300)
        self.assertEqual(fleet["speed"], 60)
        self.assertEqual(len(fleet["systems"]), 12)
        uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        for system in fleet["systems"]:
            self.assertRegex(system["systemId"], uuid)
            self.assertLessEqual(
                set(system),
                {"systemId", "siteId", "siteName", "timezone", "latitude", "longitude", "statusName", "inverters",
                 "batteries", "pvLinks", "siteMeter"},
            )
            self.assertEqual(system["statusName"], "SUCCESS")
            self.assertEqual(len(system["inverters"]), 1)
            inverter = system["inverters"][0]
            self.assertEqual(set(inverter), {"rcpn", "model", "ratedPowerW", "inverterSetting"})
            self.assertIn(inverter["ratedPowerW"], (7600, 11400))
            self.assertIsInstance(inverter["inverterSetting"]["acPVPowerRating"], float)
            self.assertRegex(inverter["rcpn"], r"^[0-9A-F]{12}$")
            for battery in system["batteries"]:
                self.assertEqual(set(battery), {"rcpn", "model", "capacityWh", "ratedPowerW"})
                self.assertEqual(battery["capacityWh"], 3000)
            for link in system["pvLinks"]:
                self.assertEqual(set(link), {"rcpn", "ratedPowerW"})
            if "siteMeter" in system:
                self.assertEqual(system["siteMeter"], {"id": system["systemId"] + "-meter"})
        faults = fleet["faults"]
        self.assertEqual(len(faults), 6)
        self.assertEqual(
            faults[0],
            {"at_s": 3600, "kind": "silent", "system": 1, "system_id": fleet["systems"][1]["systemId"]},
        )
        self.assertEqual(faults[2]["inverter_state"], 28688)
        self.assertEqual(faults[4]["status"], "DISCONNECTED")
        self.assertEqual(faults[5], {"at_s": 0, "kind": "ces_5xx", "duration_s": 120})

    def test_ids_are_stable_and_prefixed(self):
        text = SCENARIO.replace('site_meter_fraction = 0.6', 'site_meter_fraction = 0.6\nid_prefix = "sim-"')
        a = json.loads(run("--scenario", self.scenario(SCENARIO), "--print-fleet").stdout)
        b = json.loads(run("--scenario", self.scenario(text), "--print-fleet").stdout)
        self.assertEqual([s["systemId"] for s in b["systems"]], ["sim-" + s["systemId"] for s in a["systems"]])
        again = json.loads(run("--scenario", self.scenario(SCENARIO), "--print-fleet").stdout)
        self.assertEqual(a, again)

    def test_shipped_scenarios_load(self):
        demo = json.loads(run("--scenario", os.path.join(SOURCE_DIR, "sim/scenarios/demo-50.toml"), "--print-fleet").stdout)
        self.assertEqual(len(demo["systems"]), 50)
        kinds = {f["kind"] for f in demo["faults"]}
        self.assertLessEqual({"silent", "inverter_error", "ces_status", "mixed_ratings"}, kinds)
        ac = sum(1 for s in demo["systems"] if s["inverters"][0]["inverterSetting"]["acPVPowerRating"] > 0)
        self.assertTrue(10 <= ac <= 20, ac)
        load = json.loads(run("--scenario", os.path.join(SOURCE_DIR, "sim/scenarios/load-10k.toml"), "--print-fleet").stdout)
        self.assertEqual(len(load["systems"]), 10000)
        self.assertEqual(load["faults"], [])

    def test_help(self):
        result = run("--help")
        self.assertEqual(result.returncode, 0)
        for option in ("--scenario", "--sink", "--speed", "--duration", "--print-fleet"):
            self.assertIn(option, result.stdout)

    def test_bad_arguments_exit_2(self):
        good = self.scenario(SCENARIO)
        cases = [
            ([], "--scenario"),
            (["--scenario", good], "--sink"),
            (["--scenario", os.path.join(self.tmp.name, "missing.toml"), "--print-fleet"], "missing.toml"),
            (["--scenario", good, "--sink", "ftp://x"], "ftp://x"),
            (["--scenario", good, "--sink", "file:/tmp", "--speed", "0"], "--speed"),
            (["--scenario", good, "--sink", "file:/tmp/x.bin", "--duration", "-5"], "--duration"),
            (["--scenario", good, "--bogus"], "--bogus"),
        ]
        for args, named in cases:
            result = run(*args)
            self.assertEqual(result.returncode, 2, (args, result.stderr))
            self.assertIn(named, result.stderr, args)

    def test_bad_scenarios_exit_2_naming_the_problem(self):
        base = SCENARIO.split("[[fault]]")[0]
        cases = [
            (base.replace("systems = 12", "systems = 0"), "systems"),
            (base.replace("systems = 12", 'systems = "12"'), "systems"),
            (base.replace('start = "2026-06-21T04:00:00Z"', 'start = "yesterday"'), "start"),
            (base.replace("speed = 60", "sped = 60"), "sped"),
            (base.replace("ac_coupled_fraction = 0.4", "ac_coupled_fraction = 1.5"), "ac_coupled_fraction"),
            (base.replace('name = "fleet-sim-test"\n', ""), "name"),
            (base + '[[fault]]\nat_s = 1\nsystem = 12\nkind = "silent"\n', "system"),
            (base + '[[fault]]\nat_s = 1\nsystem = 0\nkind = "explode"\n', "explode"),
            (base + '[[fault]]\nat_s = 1\nkind = "silent"\n', "system"),
            (base + '[[fault]]\nat_s = 1\nsystem_id = "nope"\nkind = "silent"\n', "nope"),
            (base + '[[fault]]\nat_s = 1\nsystem = 0\nkind = "ces_status"\nstatus = "FINE"\n', "status"),
            (base + '[[fault]]\nat_s = 1\nkind = "ces_429"\n', "duration_s"),
            (base + '[[fault]]\nat_s = 1\nsystem = 0\nkind = "inverter_error"\ninverter = 1\n', "second inverter"),
            (base + '[[fault]]\nat_s = 1\nsystem = 0\nkind = "inverter_error"\ninverter = 2\n', "inverter"),
            (base + '[[fault]]\nat_s = 1\nsystem = 0\nkind = "silent"\ninverter = 0\n', "inverter"),
            (base + "[scenario\n", "s.toml"),
        ]
        for text, named in cases:
            result = run("--scenario", self.scenario(text), "--print-fleet")
            self.assertEqual(result.returncode, 2, (named, result.stdout[:200]))
            self.assertIn("bad scenario", result.stderr)
            self.assertIn(named, result.stderr)

    def test_sigterm_stops_cleanly(self):
        out = os.path.join(self.tmp.name, "live.bin")
        proc = subprocess.Popen(
            [FLEET_SIM, "--scenario", self.scenario(SCENARIO), "--sink", "file:" + out, "--speed", "600"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.time() + 10
            while time.time() < deadline and (not os.path.exists(out) or len(read_frames(out)) < 24):
                time.sleep(0.05)
            self.assertGreaterEqual(len(read_frames(out)), 24)  # the start tick and the one 0.5 s later
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=5), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()
        # Paced by the accelerated clock: at 600x, 300 s intervals come every 0.5 s, not all at once.
        self.assertLess(len(read_frames(out)), 12 * 40)


class Receiver(http.server.BaseHTTPRequestHandler):
    """An ingest endpoint that fails its first `failures` POSTs with 503 or answers `status`."""

    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with server.lock:
            server.posts += 1
            if server.posts <= server.failures:
                code = 503
            else:
                code = server.status
                if code == 200:
                    server.batches.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(code)
        if code == 503:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class FleetSimHttpSinkTest(unittest.TestCase):
    def start_receiver(self, failures=0, status=200):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        server.lock = threading.Lock()
        server.posts, server.failures, server.status, server.batches = 0, failures, status, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server

    def scenario(self, systems):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "s.toml")
        with open(path, "w") as f:
            f.write(SCENARIO.split("[[fault]]")[0].replace("systems = 12", f"systems = {systems}"))
        return path

    def test_batches_of_500_retried_until_delivered(self):
        server = self.start_receiver(failures=2)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/telemetry"
        result = run("--scenario", self.scenario(700), "--sink", url, "--speed", "1e7", "--duration", "300")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("retrying", result.stderr)
        self.assertIn("1400 delivered, 0 rejected, 0 not delivered", result.stderr)
        sizes = [len(body["records"]) for _, body in server.batches]
        self.assertEqual(sizes, [500, 200, 500, 200])
        self.assertTrue(all(ctype == "application/json" for ctype, _ in server.batches))
        seen = set()
        for _, body in server.batches:
            for record in body["records"]:
                self.assertEqual(set(record), {"data", "partitionKey"})
                data = base64.b64decode(record["data"], validate=True)
                self.assertGreater(len(data), 50)
                seen.add((record["partitionKey"], data))
        self.assertEqual(len(seen), 1400)  # every record once: none lost, none duplicated
        self.assertEqual(len({key for key, _ in seen}), 700)

    def test_rejected_batches_are_counted_and_fail_the_run(self):
        server = self.start_receiver(status=400)
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/telemetry"
        result = run("--scenario", self.scenario(3), "--sink", url, "--speed", "1e7", "--duration", "300")
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("REJECTED 3 records", result.stderr)
        self.assertIn("0 delivered, 6 rejected", result.stderr)

    def test_unreachable_sink_is_retried_until_stopped(self):
        server = self.start_receiver()
        port = server.server_address[1]
        server.shutdown()
        server.server_close()
        proc = subprocess.Popen(
            [FLEET_SIM, "--scenario", self.scenario(3), "--sink", f"http://127.0.0.1:{port}/v1/telemetry",
             "--speed", "1e7", "--duration", "300"],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        self.assertIsNone(proc.poll(), "fleet-sim gave up instead of retrying")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn("NOT DELIVERED: 3 records", err)
        self.assertIn("0 delivered, 0 rejected, 3 not delivered", err)


class FakeKinesis(http.server.BaseHTTPRequestHandler):
    """A Kinesis endpoint (JSON 1.1 protocol) for the kinesis sink: DescribeStreamSummary of
    `server.stream`; PutRecords stores the records and fails what `server.plan` says: per call, in
    order, either "throttle" (the whole call: ProvisionedThroughputExceededException), an int n
    (the first n entries fail with ProvisionedThroughputExceededException, FailedRecordCount = n),
    "refuse_first" (the first entry fails for good with a KMS error) or "ok"."""

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", "fake-request")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        target = self.headers.get("X-Amz-Target", "")
        with server.lock:
            server.auth.append(self.headers.get("Authorization", ""))
            if target == "Kinesis_20131202.DescribeStreamSummary":
                if body.get("StreamName") != server.stream:
                    return self.answer(400, {"__type": "ResourceNotFoundException", "message": "Stream not found"})
                return self.answer(200, {"StreamDescriptionSummary": {"StreamName": server.stream,
                                                                      "StreamStatus": "ACTIVE", "OpenShardCount": 1}})
            if target != "Kinesis_20131202.PutRecords":
                return self.answer(400, {"__type": "UnknownOperationException", "message": target})
            records = body["Records"]
            server.calls.append(len(records))
            step = server.plan.pop(0) if server.plan else "ok"
            if step == "throttle":
                return self.answer(400, {"__type": "ProvisionedThroughputExceededException", "message": "slow down"})
            failing = step if isinstance(step, int) else 0
            results = []
            for i, record in enumerate(records):
                if i < failing:
                    results.append({"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "busy"})
                elif i == 0 and step == "refuse_first":
                    results.append({"ErrorCode": "KMSAccessDeniedException", "ErrorMessage": "no key"})
                else:
                    server.stored.append((record["PartitionKey"], base64.b64decode(record["Data"], validate=True)))
                    results.append({"SequenceNumber": str(len(server.stored)), "ShardId": "shardId-000000000000"})
            return self.answer(200, {"FailedRecordCount": sum(1 for r in results if "ErrorCode" in r),
                                     "Records": results})

    def log_message(self, *args):
        pass


class FleetSimKinesisSinkTest(unittest.TestCase):
    """The kinesis sink against a fake endpoint that can fail entries (moto never does)."""

    def start_kinesis(self, plan):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKinesis)
        server.lock = threading.Lock()
        server.stream, server.plan = "telemetry", list(plan)
        server.calls, server.stored, server.auth = [], [], []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server

    def run_sink(self, server, systems, stream="telemetry", duration="300"):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "s.toml")
        with open(path, "w") as f:
            f.write(SCENARIO.split("[[fault]]")[0].replace("systems = 12", f"systems = {systems}"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ENDPOINT_URL_KINESIS": f"http://127.0.0.1:{server.server_address[1]}",
                    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "eu-west-1"})
        return run("--scenario", path, "--sink", f"kinesis:{stream}", "--speed", "1e7", "--duration", duration,
                   env=env)

    def test_failed_entries_and_throttled_calls_are_sent_again_until_all_are_stored(self):
        server = self.start_kinesis(["throttle", 7, "ok", 500])
        result = self.run_sink(server, 700)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("1400 delivered, 0 rejected, 0 not delivered", result.stderr)
        self.assertIn("7 of 500 entries failed (ProvisionedThroughputExceededException", result.stderr)
        # Batches of at most 500: the throttled call sent again whole, then only the 7 failed entries
        # of the partial failure, and the batch of 200 whose every entry failed sent again whole.
        self.assertEqual(server.calls, [500, 500, 7, 200, 200, 500, 200])
        self.assertEqual(len(server.stored), 1400)
        self.assertEqual(len(set(server.stored)), 1400)  # every record once: none lost, none twice
        self.assertEqual(len({key for key, _ in server.stored}), 700)  # partition key = systemId
        self.assertTrue(all(a.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and "/eu-west-1/kinesis/" in a
                            for a in server.auth))

    def test_an_entry_refused_for_good_is_counted_and_fails_the_run(self):
        server = self.start_kinesis(["refuse_first"])
        result = self.run_sink(server, 3)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("REJECTED 1 record of system", result.stderr)
        self.assertIn("KMSAccessDeniedException", result.stderr)
        self.assertIn("5 delivered, 1 rejected, 0 not delivered", result.stderr)

    def test_a_missing_stream_is_a_usage_error(self):
        server = self.start_kinesis([])
        result = self.run_sink(server, 3, stream="nope")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("ResourceNotFoundException", result.stderr)
        self.assertEqual(server.calls, [])

    def test_missing_aws_environment_is_a_usage_error(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        path = os.path.join(tmp.name, "s.toml")
        with open(path, "w") as f:
            f.write(SCENARIO.split("[[fault]]")[0])
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        result = run("--scenario", path, "--sink", "kinesis:telemetry", "--duration", "300", env=env)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("AWS_", result.stderr)


if __name__ == "__main__":
    unittest.main()
