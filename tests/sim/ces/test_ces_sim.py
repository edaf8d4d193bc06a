"""The CES simulator against contracts/ces-api.md: the launcher as a subprocess on a free port, and
the app in-process with a fake wall clock for the scenario's timed faults (no sleeps).

Environment: CES_SIM_LAUNCHER (build/bin/ces-sim), FLEET_SIM (build/bin/fleet-sim),
PWRCELL_SOURCE_DIR (the repository root).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

SOURCE_DIR = os.environ.get("PWRCELL_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
LAUNCHER = os.environ.get("CES_SIM_LAUNCHER", "")
FLEET_SIM = os.environ.get("FLEET_SIM", "")
sys.path.insert(0, os.path.join(SOURCE_DIR, "sim", "ces"))

from ces_sim.clock import FakeWall, SimClock, parse_iso  # noqa: E402
from ces_sim.server import create_app  # noqa: E402
from ces_sim.state import CesState  # noqa: E402

API_KEY = "test-key"
START = "2026-06-21T04:00:00Z"

SCENARIO = f"""
[scenario]
name = "ces-sim-test"
seed = 77
systems = 120
start = "{START}"
interval_s = 300
speed = 60
ac_coupled_fraction = 0.3
site_meter_fraction = 0.5

[[fault]]
at_s = 0
system = 2
kind = "ces_status"
status = "DISCONNECTED"

[[fault]]
at_s = 0
system = 5
kind = "mixed_ratings"

[[fault]]
at_s = 0
system = 6
kind = "silent"

[[fault]]
at_s = 0
system = 9
kind = "second_inverter"

[[fault]]
at_s = 3600
system = 7
kind = "ces_status"
status = "ERROR"

[[fault]]
at_s = 3600
system = 8
kind = "silent"

[[fault]]
at_s = 7200
kind = "ces_5xx"
duration_s = 600

[[fault]]
at_s = 9000
kind = "ces_429"
duration_s = 1200
"""


def write_scenario(directory, text=SCENARIO):
    path = os.path.join(directory, "scenario.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def print_fleet(scenario):
    result = subprocess.run([FLEET_SIM, "--scenario", scenario, "--print-fleet"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body


def http(method, url, key=API_KEY, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if key is not None:
        request.add_header("x-api-key", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return Answer(response.status, response.headers, json.loads(raw) if raw else None)
    except urllib.error.HTTPError as error:
        raw = error.read()
        return Answer(error.code, error.headers, json.loads(raw) if raw else None)


class CesSimProcess:
    """ces-sim started through its launcher on port 0."""

    def __init__(self, scenario, *extra):
        self.proc = subprocess.Popen(
            [LAUNCHER, "--host", "127.0.0.1", "--port", "0", "--api-key", API_KEY, "--scenario", scenario, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        match = re.fullmatch(r"ces-sim listening on (http://127\.0\.0\.1:(\d+))\n", line)
        if not match:
            self.stop()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.proc.stderr.read()}")
        self.url = match.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


class CesSimOverHttpTest(unittest.TestCase):
    """The launcher, the listening line, and the API as a client sees it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.scenario = write_scenario(cls.tmp.name)
        cls.fleet = print_fleet(cls.scenario)
        cls.ids = [s["systemId"] for s in cls.fleet["systems"]]
        # No rate limit here: the 429 test below runs its own instance.
        cls.sim = CesSimProcess(cls.scenario, "--rate-limit", "0")
        cls.api = cls.sim.url + "/systems/v1"

    @classmethod
    def tearDownClass(cls):
        code = cls.sim.stop()
        cls.tmp.cleanup()
        assert code == 0, f"ces-sim exited with {code} after SIGTERM"

    def setUp(self):
        self.assertEqual(http("DELETE", self.sim.url + "/admin/requests").status, 204)

    def test_missing_or_wrong_key_is_401_with_an_error_body(self):
        for key in (None, "wrong"):
            answer = http("GET", f"{self.api}/{self.ids[0]}/metadata?inverterSetting=true", key=key)
            self.assertEqual(answer.status, 401)
            self.assertEqual(answer.body["error"]["code"], "UNAUTHORIZED")
            self.assertIsInstance(answer.body["error"]["message"], str)
            answer = http("GET", f"{self.api}/status?systemIds={self.ids[0]}", key=key)
            self.assertEqual(answer.status, 401)

    def test_metadata_is_the_fleet_sims_system(self):
        for index in (0, 1, 3, 10, 119):
            answer = http("GET", f"{self.api}/{self.ids[index]}/metadata?inverterSetting=true")
            self.assertEqual(answer.status, 200)
            self.assertEqual(answer.body, self.fleet["systems"][index])
            self.assertEqual(answer.headers["Content-Type"], "application/json")
            self.assertEqual(
                list(answer.body)[:7],
                ["systemId", "siteId", "siteName", "timezone", "latitude", "longitude", "statusName"],
            )

    def test_inverter_setting_only_when_asked(self):
        url = f"{self.api}/{self.ids[0]}/metadata"
        for query in ("", "?inverterSetting=false", "?other=1"):
            body = http("GET", url + query).body
            self.assertEqual(len(body["inverters"]), 1)
            self.assertNotIn("inverterSetting", body["inverters"][0], query)
            self.assertEqual(set(body["inverters"][0]), {"rcpn", "model", "ratedPowerW"})
        body = http("GET", url + "?inverterSetting=true").body
        self.assertIsInstance(body["inverters"][0]["inverterSetting"]["acPVPowerRating"], float)

    def test_unknown_system_is_404_not_found(self):
        answer = http("GET", f"{self.api}/no-such-system/metadata?inverterSetting=true")
        self.assertEqual(answer.status, 404)
        self.assertEqual(answer.body["error"]["code"], "NOT_FOUND")
        self.assertIn("no-such-system", answer.body["error"]["message"])

    def test_status_batch_with_not_found(self):
        answer = http("GET", f"{self.api}/status?systemIds={self.ids[0]},ghost-1,{self.ids[1]},ghost-2")
        self.assertEqual(answer.status, 200)
        self.assertEqual(set(answer.body), {"statuses", "notFound"})
        self.assertEqual([s["systemId"] for s in answer.body["statuses"]], self.ids[:2])
        self.assertEqual(answer.body["notFound"], ["ghost-1", "ghost-2"])
        start = parse_iso(START)
        for status in answer.body["statuses"]:
            self.assertEqual(status["statusName"], "SUCCESS")
            self.assertRegex(status["lastCommunicationAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            # The last 5-minute record fleet-sim sent: on the interval grid, not in the future.
            offset = parse_iso(status["lastCommunicationAt"]) - start
            self.assertEqual(offset % 300, 0)
            self.assertGreaterEqual(offset, 0)

    def test_batches_up_to_100_and_no_more(self):
        answer = http("GET", f"{self.api}/status?systemIds=" + ",".join(self.ids[:100]))
        self.assertEqual(answer.status, 200)
        self.assertEqual(len(answer.body["statuses"]), 100)
        answer = http("GET", f"{self.api}/status?systemIds=" + ",".join(self.ids[:101]))
        self.assertEqual(answer.status, 400)
        self.assertEqual(answer.body["error"]["code"], "BAD_REQUEST")
        self.assertIn("101", answer.body["error"]["message"])
        answer = http("GET", f"{self.api}/status")
        self.assertEqual(answer.status, 400)
        self.assertEqual(answer.body["error"]["code"], "BAD_REQUEST")

    def test_scenario_faults_at_start(self):
        statuses = {
            s["systemId"]: s
            for s in http("GET", f"{self.api}/status?systemIds={self.ids[2]},{self.ids[6]}").body["statuses"]
        }
        self.assertEqual(statuses[self.ids[2]]["statusName"], "DISCONNECTED")
        # Silent from the start: CES never heard it.
        self.assertNotIn("lastCommunicationAt", statuses[self.ids[6]])
        self.assertEqual(http("GET", f"{self.api}/{self.ids[2]}/metadata").body["statusName"], "DISCONNECTED")
        mixed = http("GET", f"{self.api}/{self.ids[5]}/metadata?inverterSetting=true").body
        ratings = [i["inverterSetting"]["acPVPowerRating"] for i in mixed["inverters"]]
        self.assertEqual(len(ratings), 2)
        self.assertEqual(sum(1 for r in ratings if r == 0), 1, ratings)
        self.assertNotEqual(mixed["inverters"][0]["rcpn"], mixed["inverters"][1]["rcpn"])
        self.assertEqual(mixed["inverters"][0], self.fleet["systems"][5]["inverters"][0])
        # second_inverter: the same but consistent; its RCP number is the one fleet-sim streams under.
        two = http("GET", f"{self.api}/{self.ids[9]}/metadata?inverterSetting=true").body
        first = self.fleet["systems"][9]["inverters"][0]
        self.assertEqual(two["inverters"][0], first)
        self.assertEqual(two["inverters"][1], {**first, "rcpn": format(int(first["rcpn"], 16) + 1, "012X")})

    def test_admin_status_is_visible_in_status_and_metadata(self):
        target = self.ids[20]
        answer = http("POST", f"{self.sim.url}/admin/systems/{target}/status", body={"statusName": "NEVER_CONNECTED"})
        self.assertEqual(answer.status, 200)
        status = http("GET", f"{self.api}/status?systemIds={target}").body["statuses"][0]
        self.assertEqual(status["statusName"], "NEVER_CONNECTED")
        self.assertEqual(http("GET", f"{self.api}/{target}/metadata").body["statusName"], "NEVER_CONNECTED")
        self.assertEqual(
            http("POST", f"{self.sim.url}/admin/systems/{target}/status", body={"statusName": "FINE"}).status, 400)
        self.assertEqual(
            http("POST", f"{self.sim.url}/admin/systems/ghost/status", body={"statusName": "ERROR"}).status, 404)
        http("POST", f"{self.sim.url}/admin/systems/{target}/status", body={"statusName": "SUCCESS"})

    def test_admin_injected_faults(self):
        url = f"{self.api}/status?systemIds={self.ids[0]}"
        self.assertEqual(http("POST", f"{self.sim.url}/admin/faults", body={"kind": "5xx", "count": 2}).status, 200)
        first, second, third = http("GET", url), http("GET", url), http("GET", url)
        self.assertEqual((first.status, second.status, third.status), (503, 503, 200))
        self.assertEqual(first.body["error"]["code"], "UNAVAILABLE")

        http("POST", f"{self.sim.url}/admin/faults", body={"kind": "429"})  # until cleared
        for _ in range(3):
            answer = http("GET", url)
            self.assertEqual(answer.status, 429)
            self.assertGreaterEqual(int(answer.headers["Retry-After"]), 1)
            self.assertEqual(answer.body["error"]["code"], "RATE_LIMITED")
        http("POST", f"{self.sim.url}/admin/faults", body={"kind": "clear"})
        self.assertEqual(http("GET", url).status, 200)
        self.assertEqual(http("POST", f"{self.sim.url}/admin/faults", body={"kind": "boom"}).status, 400)
        self.assertEqual(http("POST", f"{self.sim.url}/admin/faults", body={"kind": "5xx", "count": 0}).status, 400)

    def test_admin_adds_and_deletes_systems(self):
        added = {
            "systemId": "added-1",
            "siteId": "site-added-1",
            "siteName": "Added residence",
            "timezone": "America/Denver",
            "latitude": 39.7,
            "longitude": -105.0,
            "statusName": "SUCCESS",
            "inverters": [{"rcpn": "000100099999", "model": "XVT076A03", "ratedPowerW": 7600,
                           "inverterSetting": {"acPVPowerRating": 0.0}}],
            "batteries": [],
            "pvLinks": [],
        }
        answer = http("POST", f"{self.sim.url}/admin/systems", body=added)
        self.assertEqual(answer.status, 201)
        self.assertEqual(http("POST", f"{self.sim.url}/admin/systems", body=added).status, 200)  # replaced
        self.assertEqual(http("GET", f"{self.api}/added-1/metadata?inverterSetting=true").body, added)
        status = http("GET", f"{self.api}/status?systemIds=added-1").body["statuses"][0]
        self.assertEqual(status, {"systemId": "added-1", "statusName": "SUCCESS"})  # never heard
        self.assertEqual(http("DELETE", f"{self.sim.url}/admin/systems/added-1").status, 204)
        self.assertEqual(http("GET", f"{self.api}/added-1/metadata").status, 404)
        self.assertEqual(http("GET", f"{self.api}/status?systemIds=added-1").body["notFound"], ["added-1"])
        self.assertEqual(http("DELETE", f"{self.sim.url}/admin/systems/added-1").status, 404)
        self.assertEqual(http("POST", f"{self.sim.url}/admin/systems", body={"siteId": "x"}).status, 400)

    def test_request_log(self):
        http("GET", f"{self.api}/{self.ids[3]}/metadata?inverterSetting=true")
        http("GET", f"{self.api}/status?systemIds={self.ids[4]},{self.ids[5]}", key="wrong")
        http("GET", f"{self.api}/status?systemIds=" + ",".join(self.ids[:101]))
        log = http("GET", f"{self.sim.url}/admin/requests").body["requests"]
        self.assertEqual(
            [(r["method"], r["path"], r["systemIds"], r["status"]) for r in log],
            [
                ("GET", f"/systems/v1/{self.ids[3]}/metadata", [self.ids[3]], 200),
                ("GET", "/systems/v1/status", self.ids[4:6], 401),
                ("GET", "/systems/v1/status", self.ids[:101], 400),
            ],
        )
        for entry in log:
            self.assertRegex(entry["simTime"], r"^2026-06-21T")


class CesSimRateLimitTest(unittest.TestCase):
    def test_past_the_rate_limit_429_with_retry_after(self):
        with tempfile.TemporaryDirectory() as tmp:
            sim = CesSimProcess(write_scenario(tmp), "--rate-limit", "3")
            try:
                fleet_id = print_fleet(os.path.join(tmp, "scenario.toml"))["systems"][0]["systemId"]
                url = f"{sim.url}/systems/v1/status?systemIds={fleet_id}"
                answers = [http("GET", url) for _ in range(6)]
                codes = [a.status for a in answers]
                # Six calls in well under a second: the first three pass.
                self.assertEqual(codes[:3], [200, 200, 200])
                self.assertIn(429, codes[3:])
                limited = next(a for a in answers if a.status == 429)
                self.assertEqual(limited.headers["Retry-After"], "1")
                self.assertEqual(limited.body["error"]["code"], "RATE_LIMITED")
                time.sleep(1.1)
                self.assertEqual(http("GET", url).status, 200)
            finally:
                self.assertEqual(sim.stop(), 0)


class CesSimCommandLineTest(unittest.TestCase):
    def run_launcher(self, *args):
        return subprocess.run([LAUNCHER, *args], capture_output=True, text=True, timeout=60)

    def test_help(self):
        result = self.run_launcher("--help")
        self.assertEqual(result.returncode, 0)
        for option in ("--host", "--port", "--api-key", "--scenario", "--speed", "--rate-limit", "--fleet-sim"):
            self.assertIn(option, result.stdout)

    def test_bad_scenario_exits_2_with_fleet_sims_reason(self):
        with tempfile.TemporaryDirectory() as tmp:
            scenario = write_scenario(tmp, SCENARIO.replace("systems = 120", "systems = 0"))
            result = self.run_launcher("--port", "0", "--api-key", "k", "--scenario", scenario)
            self.assertEqual(result.returncode, 2)
            self.assertIn("systems", result.stderr)

    def test_missing_fleet_sim_exits_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = self.run_launcher("--port", "0", "--api-key", "k", "--scenario", write_scenario(tmp),
                                       "--fleet-sim", os.path.join(tmp, "nope"))
            self.assertEqual(result.returncode, 2)
            self.assertIn("fleet-sim not found", result.stderr)

    def test_bad_arguments_exit_2(self):
        for args in ([], ["--api-key", "k"], ["--api-key", "k", "--scenario", "x", "--port", "70000"],
                     ["--api-key", "k", "--scenario", "x", "--speed", "0"]):
            self.assertEqual(self.run_launcher(*args).returncode, 2, args)


class CesSimClockTest(unittest.TestCase):
    """The scenario's timed faults on the accelerated clock, driven by a fake wall clock."""

    @classmethod
    def setUpClass(cls):
        with tempfile.TemporaryDirectory() as tmp:
            cls.fleet = print_fleet(write_scenario(tmp))
        cls.ids = [s["systemId"] for s in cls.fleet["systems"]]

    def setUp(self):
        self.wall = FakeWall()
        clock = SimClock(parse_iso(self.fleet["start"]), 60.0, wall=self.wall)
        self.state = CesState(self.fleet, clock, rate_limit=10, wall=self.wall)
        self.client = create_app(self.state, API_KEY).test_client()

    def get(self, path, remote="127.0.0.1"):
        return self.client.get(path, headers={"x-api-key": API_KEY}, environ_base={"REMOTE_ADDR": remote})

    def advance_simulated(self, seconds):
        self.wall.advance(seconds / 60.0)

    def status_of(self, index):
        body = self.get(f"/systems/v1/status?systemIds={self.ids[index]}").get_json()
        return body["statuses"][0]

    def test_status_fault_applies_at_its_time(self):
        self.advance_simulated(3599)
        self.assertEqual(self.status_of(7)["statusName"], "SUCCESS")
        self.advance_simulated(1)
        self.assertEqual(self.status_of(7)["statusName"], "ERROR")

    def test_last_communication_follows_the_clock_and_stops_when_silent(self):
        self.assertEqual(self.status_of(8)["lastCommunicationAt"], "2026-06-21T04:00:00Z")
        self.advance_simulated(299)
        self.assertEqual(self.status_of(8)["lastCommunicationAt"], "2026-06-21T04:00:00Z")
        self.advance_simulated(1)
        self.assertEqual(self.status_of(8)["lastCommunicationAt"], "2026-06-21T04:05:00Z")
        self.advance_simulated(6600)  # to 6900 s, before the scenario's 5xx window at 7200 s
        # Silent from 3600 s: the record at 3300 s was the last one.
        self.assertEqual(self.status_of(8)["lastCommunicationAt"], "2026-06-21T04:55:00Z")
        self.assertEqual(self.status_of(9)["lastCommunicationAt"], "2026-06-21T05:55:00Z")

    def test_5xx_and_429_windows(self):
        url = f"/systems/v1/status?systemIds={self.ids[0]}"
        self.advance_simulated(7199)
        self.assertEqual(self.get(url).status_code, 200)
        self.advance_simulated(1)
        answer = self.get(url)
        self.assertEqual(answer.status_code, 503)
        self.assertEqual(answer.get_json()["error"]["code"], "UNAVAILABLE")
        self.advance_simulated(600)
        self.assertEqual(self.get(url).status_code, 200)
        self.advance_simulated(9000 - 7800 + 60)
        answer = self.get(url)
        self.assertEqual(answer.status_code, 429)
        # 1140 simulated seconds of the window left at 60x: 19 wall seconds.
        self.assertEqual(answer.headers["Retry-After"], "19")
        self.advance_simulated(1140)
        self.assertEqual(self.get(url).status_code, 200)

    def test_rate_limit_window_slides(self):
        url = f"/systems/v1/status?systemIds={self.ids[0]}"
        self.assertEqual([self.get(url).status_code for _ in range(10)], [200] * 10)
        self.wall.advance(0.5)
        limited = self.get(url)
        self.assertEqual(limited.status_code, 429)
        self.assertEqual(limited.headers["Retry-After"], "1")
        self.wall.advance(0.5)
        self.assertEqual(self.get(url).status_code, 200)

    def test_admin_is_loopback_only(self):
        self.assertEqual(self.get("/admin/requests", remote="10.1.2.3").status_code, 403)
        self.assertEqual(self.get("/admin/requests", remote="::1").status_code, 200)
        self.assertEqual(self.get("/admin/requests", remote="::ffff:127.0.0.1").status_code, 200)
        # The API itself is for everyone with the key.
        self.assertEqual(self.get(f"/systems/v1/{self.ids[0]}/metadata", remote="10.1.2.3").status_code, 200)

    def test_unknown_paths_answer_with_an_error_body(self):
        answer = self.get("/systems/v2/whatever")
        self.assertEqual(answer.status_code, 404)
        self.assertEqual(answer.get_json()["error"]["code"], "NOT_FOUND")
        answer = self.client.post("/systems/v1/status", headers={"x-api-key": API_KEY})
        self.assertEqual(answer.status_code, 405)
        self.assertIn("error", answer.get_json())


if __name__ == "__main__":
    unittest.main()
