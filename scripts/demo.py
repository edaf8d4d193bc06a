#!/usr/bin/env python3
"""The demo: the adapter (`pwrcell-adapter serve`) end to end against the simulators.

Starts concerto-sim and ces-sim, enrolls the 50 systems of sim/scenarios/demo-50-live.toml in
Concerto (as an operator would), starts the adapter with auto-commissioning on, and streams the
fleet's telemetry to it with fleet-sim. It prints progress as systems register, get their
metadata, get commissioned and come ONLINE; the scenario's faults (a silent system, an inverter
error, a CES DISCONNECTED status, contradicting PV ratings) and a short Concerto outage show
OFFLINE and ERROR happening with their reasons, and recovery. Then a summary, and a clean stop
(or, with --keep, it keeps running and prints where everything is until Ctrl-C).

Usage: scripts/demo.py [--keep] [--bin-dir build/bin] [--duration S] [--workdir DIR]
(scripts/demo.sh installs and builds first, then runs this.) Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SCENARIO = os.path.join(ROOT, "sim", "scenarios", "demo-50-live.toml")
EMAIL, PASSWORD, API_KEY = "admin@example.com", "demo-password", "demo-ces-key"


def say(line=""):
    print(line, flush=True)


def http(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def get(url):
    status, body = http("GET", url)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}")
    return body


class Child:
    def __init__(self, name, argv, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir,
                                     start_new_session=True)

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; its log:\n{self.text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not log /{pattern}/ within {timeout} s; see {self.log_path}")

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def parse_metrics(text):
    samples = []
    for line in text.splitlines():
        match = re.match(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if match and not line.startswith("#"):
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def total(samples, name, **want):
    return int(sum(v for n, labels, v in samples if n == name and all(labels.get(k) == x for k, x in want.items())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep everything running after the summary")
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    parser.add_argument("--duration", type=float, default=130, help="seconds of telemetry before the summary")
    parser.add_argument("--workdir", help="where logs, the database and the configuration go (default: a temp dir)")
    parser.add_argument("--log-level", default="info", help="the adapter's log level (its log is adapter.log)")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="pwrcell-demo-")
    os.makedirs(workdir, exist_ok=True)
    bin_dir = os.path.abspath(args.bin_dir)
    binary = lambda name: os.path.join(bin_dir, name)  # noqa: E731
    for name in ("pwrcell-adapter", "concerto-sim", "ces-sim", "fleet-sim"):
        if not os.access(binary(name), os.X_OK):
            sys.exit(f"demo: {binary(name)} is missing; build first (scripts/demo.sh does)")

    children = []
    stopped = {"adapter": None}

    def stop_all():
        for child in reversed(children):
            code = child.stop()
            if child.name == "adapter":
                stopped["adapter"] = code

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        say(f"== pwrcell-adapter demo (logs, database and configuration in {workdir}) ==")
        concerto = Child("concerto-sim", [binary("concerto-sim"), "--port", "0", "--email", EMAIL, "--password",
                                          PASSWORD, "--rate-limit", "0"], workdir)
        children.append(concerto)
        ces = Child("ces-sim", [binary("ces-sim"), "--port", "0", "--api-key", API_KEY, "--scenario", SCENARIO,
                                "--rate-limit", "0"], workdir)
        children.append(ces)
        concerto_url = "http://" + concerto.wait_for(r"listening on http://(\S+)").group(1)
        ces_url = "http://" + ces.wait_for(r"listening on http://(\S+)").group(1)
        say(f"concerto-sim on {concerto_url} (admin API {concerto_url}/admin/), ces-sim on {ces_url}")

        fleet = json.loads(subprocess.run([binary("fleet-sim"), "--scenario", SCENARIO, "--print-fleet"],
                                          check=True, capture_output=True, text=True).stdout)
        systems = fleet["systems"]
        for system in systems:
            status, body = http("POST", concerto_url + "/admin/systems",
                                {"remoteId": system["systemId"], "name": system["siteName"],
                                 "adapterName": "pwrcell-adapter"})
            if status != 201:
                raise RuntimeError(f"enrolling {system['systemId']}: HTTP {status} {body}")
        say(f"enrolled {len(systems)} SYSTEM assets in Concerto for adapter \"pwrcell-adapter\" "
            "(what an operator does)")

        secrets = os.path.join(workdir, "secrets.json")
        with open(secrets, "w") as f:
            json.dump({"ConcertoCredentials": {"email": EMAIL, "password": PASSWORD},
                       "CesCredentials": {"api_key": API_KEY}}, f)
        os.chmod(secrets, 0o600)
        config = os.path.join(workdir, "deployment.toml")
        with open(config, "w") as f:
            f.write(f"""# Written by scripts/demo.py: the defaults of deployment_example.toml, with
# auto-commissioning on and intervals scaled to the demo's 5-second records.
[adapter]
auto_commissioning = true
[concerto]
root_url = "{concerto_url}"
max_requests_per_second = 100
[ces]
root_url = "{ces_url}"
[schedule]
registrar_poll_s = 5
ces_state_poll_s = 5
liveness_sweep_s = 2
[liveness]
offline_timeout_s = 15
record_interval_s = 5
[secrets]
path = "{secrets}"
[storage]
path = "{os.path.join(workdir, 'adapter.db')}"
[telemetry]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
""")
        adapter = Child("adapter", [binary("pwrcell-adapter"), "serve", "--config", config, "--log-level",
                                    args.log_level], workdir)
        children.append(adapter)
        admin_url = "http://" + adapter.wait_for(r"admin server listening on (\S+)").group(1)
        ingest_url = "http://" + adapter.wait_for(r"ingest server listening on (\S+)").group(1) + "/v1/telemetry"
        say(f"adapter: serve --config {config}")
        say(f"         admin API {admin_url}/ (metrics, api/devices), telemetry ingest {ingest_url}")

        # Telemetry is matched to a system by its inverter's RCP number, which the adapter learns
        # from CES: a record that arrives before is counted as unmatched and dropped (SPEC section
        # 3). So the fleet starts once every system is registered and has its metadata.
        deadline = time.monotonic() + 60
        while True:
            samples = parse_metrics(get(admin_url + "/metrics"))
            if (total(samples, "pwrcell_devices") >= len(systems)
                    and total(samples, "pwrcell_metadata_processed_total") >= len(systems)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the adapter did not register the enrolled systems and fetch their metadata "
                                   "within 60 s; see " + adapter.log_path)
            time.sleep(0.5)
        fleet_sim = Child("fleet-sim", [binary("fleet-sim"), "--scenario", SCENARIO, "--sink", ingest_url], workdir)
        children.append(fleet_sim)
        say("fleet-sim: streaming one EnergyRecordSet per system every 5 s to the adapter")
        say("scenario faults: system 3 goes silent at 40 s (back at 100 s); system 7's inverter errs from 30 s "
            "to 90 s; CES reports system 11 DISCONNECTED from 30 s; system 15 has contradicting PV ratings")
        say()

        names = {s["systemId"]: f"#{i} {s['siteName']}" for i, s in enumerate(systems)}
        asset_to_system = {}
        seen_changes = 0
        outage_at, outage_done = 70.0, False
        start = time.monotonic()
        say(" time  registered  metadata  commissioned  ONLINE  OFFLINE  ERROR   points to Concerto")
        last_line = ""
        while time.monotonic() - start < args.duration:
            elapsed = time.monotonic() - start
            if not outage_done and elapsed >= outage_at:
                http("POST", concerto_url + "/admin/faults", {"kind": "5xx", "status": 503, "count": 20})
                say(f"{elapsed:5.0f}s  >> injected a Concerto outage: its next 20 requests answer 503 "
                    "(the adapter retries with backoff; nothing is lost)")
                outage_done = True
            samples = parse_metrics(get(admin_url + "/metrics"))
            devices = total(samples, "pwrcell_devices")
            with_metadata = total(samples, "pwrcell_metadata_processed_total")
            done = total(samples, "pwrcell_devices_by_commissioning", state="DONE")
            line = (f"{devices:>4}/{len(systems):<4}  {min(with_metadata, devices):>8}  {done:>12}  "
                    f"{total(samples, 'pwrcell_devices', remote_state='ONLINE'):>6}  "
                    f"{total(samples, 'pwrcell_devices', remote_state='OFFLINE'):>7}  "
                    f"{total(samples, 'pwrcell_devices', remote_state='ERROR'):>5}   "
                    f"{total(samples, 'pwrcell_concerto_points_total', outcome='accepted'):>8}")
            if line != last_line:
                say(f"{elapsed:5.0f}s  {line}")
                last_line = line
            if len(asset_to_system) < devices:
                for device in get(admin_url + "/api/devices")["devices"]:
                    if device.get("concerto_asset_id"):
                        asset_to_system[device["concerto_asset_id"]] = device["remote_id"]
            history = get(concerto_url + "/admin/remote-states?kind=asset")["history"]
            for change in history[seen_changes:]:
                system = asset_to_system.get(change["id"])
                if system and change["state"] != "ONLINE" and change["previous"] is not None:
                    say(f"{elapsed:5.0f}s  >> {names[system]} (asset {change['id']}): {change['previous']} -> "
                        f"{change['state']}: {change['reason']}")
                elif system and change["state"] == "ONLINE" and change["previous"] in ("ERROR", "OFFLINE") \
                        and elapsed > 25:
                    say(f"{elapsed:5.0f}s  >> {names[system]} (asset {change['id']}): {change['previous']} -> "
                        f"ONLINE: {change['reason']}")
            seen_changes = len(history)
            time.sleep(2)

        say()
        say("== summary ==")
        samples = parse_metrics(get(admin_url + "/metrics"))
        stats = get(concerto_url + "/admin/stats")
        by_type = stats["assetsByType"]
        say(f"Concerto: {stats['sites']} sites; assets {', '.join(f'{k} {v}' for k, v in sorted(by_type.items()))}")
        # A mixed_ratings / second_inverter fault gives its system a second inverter (SPEC 6).
        two_inverters = {f["system_id"] for f in fleet["faults"] if f["kind"] in ("mixed_ratings", "second_inverter")}
        expected = {"SYSTEM": len(systems), "INVERTER": len(systems) + len(two_inverters),
                    "BATTERY": sum(len(s["batteries"]) for s in systems),
                    "PHOTOVOLTAIC": sum(len(s.get("pvLinks", [])) for s in systems),
                    "SITE_METER": sum(1 for s in systems if s.get("siteMeter"))}
        mismatch = {k: (by_type.get(k, 0), v) for k, v in expected.items() if by_type.get(k, 0) != v}
        say("          " + ("exactly one asset per device of the fleet (systems, inverters, batteries, PV links, site meters)"
                             if not mismatch and stats["sites"] == len(systems)
                             else f"differs from the fleet (got, expected): {mismatch}"))
        say(f"          {stats['pointsStored']} telemetry points stored, {stats['duplicates']} duplicates, "
            f"{stats['remoteStateChanges']} remote_state changes")
        say(f"adapter:  records received {total(samples, 'pwrcell_records_total', outcome='received')}, "
            f"decoded {total(samples, 'pwrcell_telemetry_records_total', outcome='decoded')}, "
            f"unmatched {total(samples, 'pwrcell_telemetry_records_total', outcome='unmatched')}; "
            f"dead letters {total(samples, 'pwrcell_dead_letters')}")
        say(f"          Concerto requests by outcome: "
            + ", ".join(f"{o} {total(samples, 'pwrcell_concerto_requests_total', outcome=o)}"
                        for o in sorted({l.get('outcome') for n, l, _ in samples
                                         if n == 'pwrcell_concerto_requests_total'})))
        devices = {d["remote_id"]: d for d in get(admin_url + "/api/devices")["devices"]}
        for index in (3, 7, 11, 15):
            system_id = systems[index]["systemId"]
            device = devices.get(system_id, {})
            say(f"{names[system_id]}: {device.get('remote_state')} ({device.get('remote_state_reason')}), "
                f"coupling {device.get('coupling')}")
            for change in get(concerto_url + f"/admin/remote-states?id={device.get('concerto_asset_id')}&kind=asset")[
                    "history"]:
                say(f"    {change['at']}  {change['previous'] or '-':>7} -> {change['state']:<7} {change['reason']}")
        mixed = re.search(r"^.*" + re.escape(systems[15]["systemId"]) + r".*acPVPowerRating.*$", adapter.text(), re.M)
        if mixed:
            say(f"    adapter log: {mixed.group(0)[:220]}")

        if args.keep:
            say()
            say("== kept running (Ctrl-C stops everything) ==")
            say(f"adapter admin API  {admin_url}/  ({admin_url}/metrics, {admin_url}/api/devices)")
            say(f"telemetry ingest   {ingest_url}")
            say(f"concerto-sim admin {concerto_url}/admin/stats, {concerto_url}/admin/assets")
            say(f"ces-sim admin      {ces_url}/admin/requests")
            say(f"logs and database  {workdir}")
            while all(child.proc.poll() is None for child in children):
                time.sleep(1)
    except KeyboardInterrupt:
        say("\ninterrupted")
    finally:
        stop_all()
    code = stopped["adapter"]
    say(f"stopped: adapter exited {code} after SIGTERM" + (" (clean)" if code == 0 else ""))
    if not args.workdir and not args.keep and code == 0:
        shutil.rmtree(workdir, ignore_errors=True)
    elif code != 0:
        say(f"logs kept in {workdir}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
