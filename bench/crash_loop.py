#!/usr/bin/env python3
"""Crash loop (issue 13, item 1): `kill -9` of `serve` at chosen moments while a fleet streams,
restarted each time on the same store; then counts what the kills cost.

The run, in two phases on one SQLite store:

1. Commissioning. --commission systems of the fleet are enrolled in concerto-sim and `serve`
   starts with auto-commissioning on. Each commissioning kill waits (after a random pause) for a
   commissioning in flight (a device PENDING while the concerto pool holds a message) and kills.
   Then every one of them must end DONE.
2. Streaming. The rest of the fleet is enrolled, `serve` restarts with auto-commissioning off (a
   clean stop, not counted: commissioning all 10,000 systems is ~400,000 Concerto calls, hours
   against the Python simulator), every system is registered, and fleet-sim streams the whole
   fleet into the ingest endpoint (fixed port, so fleet-sim's retries reach the next process).
   The other kills, in a seeded random order, each after a random pause:
     batch   - while the ingest or concerto-telemetry pool holds a message (queue_depth in_flight);
     sweep   - on the log line `schedule: liveness_sweep started` (or at once when a sweep is
               running); landed when no `liveness_sweep done` line followed before the kill;
     redrive - ingestTelemetry is failed (HTTP 500) until the concerto-telemetry queue has dead
               letters, then `pwrcell-adapter queues redrive concerto-telemetry` runs and serve is
               killed while that command still runs.
   After the last restart, fleet-sim is stopped once its posts succeed again, and the run waits
   for convergence.

The scenario's fleet (systems, seed, fractions) is run on a live clock (start = now, speed 1, a
record every --interval s; default the scenario's interval / speed), since the adapter judges
staleness by its own clock. Some systems (1 %, at least 1) get an `inverter_error` fault early on:
the truth at the end is ERROR for those, ONLINE for the rest (offline_timeout is long enough that
no system goes OFFLINE during the run).

Counted at the end:
  accepted records lost     records fleet-sim had acknowledged (HTTP 200; fleet-sim retries until
                            then) of which no INVERTER_STATE or SYSTEM_MODE point reached Concerto
                            (must be 0)
  points duplicated         concerto-sim's `duplicates`: points it was sent again (reported)
  duplicate sites / assets  sites or assets beyond one per (type, remoteId) and per system, extra
                            inverters beyond the fleet's (must be 0)
  wrong states              SYSTEM assets whose remoteState is not the truth, sites of
                            commissioned systems likewise, devices whose remote_state in the
                            adapter differs from Concerto's (must be 0)
  convergence               seconds from the last restart until every record produced before it is
                            in Concerto, every state is right and the queues are empty

Usage: bench/crash_loop.py [--scenario sim/scenarios/load-10k.toml] [--systems N] [--kills 20]
                           [--seed 1] [--interval S] [--commission C] [--bin-dir build/bin] [--keep]
Exit status: 0 when every must-be-zero count is 0 and the run converged, 1 otherwise, 2 when the
run could not be carried out (a process would not start, a timeout before the counting).
"""

import argparse
import concurrent.futures
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EMAIL, PASSWORD, API_KEY = "crash@example.com", "crash-loop-password", "crash-loop-ces-key"
ADAPTER_NAME = "pwrcell-adapter"
ERROR_STATE = 28688  # 0x7010, an inverter error state (sim/scenarios/README.md)


class RunError(Exception):
    """The run could not be carried out (not a finding about the adapter): exit 2."""


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def http(method, url, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def get(url, timeout=300):
    status, body = http("GET", url, timeout=timeout)
    if status != 200:
        raise RunError(f"GET {url}: {status} {str(body)[:300]}")
    return body


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        match = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if match and not line.startswith("#"):
            labels = frozenset(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def metric(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def wait_for(predicate, what, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError, RunError) as error:
            last = error
        if time.monotonic() > deadline:
            raise RunError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last})" if last else ""))
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text):
    """ISO 8601 UTC (`...Z`, fractions allowed) -> seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _die_with_parent():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    """A child process logging to NAME.log in the work directory."""

    def __init__(self, name, argv, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir,
                                     start_new_session=True, preexec_fn=_die_with_parent)

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def size(self):
        return os.path.getsize(self.log_path)

    def read_from(self, offset):
        """The log from byte `offset` on (serve at debug level writes a lot: never read it whole in a loop)."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def line(self, pattern, timeout=120):
        regex = re.compile(pattern)

        def found():
            match = regex.search(self.text())
            if not match and self.proc.poll() is not None:
                raise RunError(f"{self.name} exited with {self.proc.returncode}: {self.text()[-2000:]}")
            return match
        return wait_for(found, f"{self.name}: /{pattern}/", timeout, interval=0.1)

    def running(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


class Run:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.rng = random.Random(args.seed)
        self.bins = args.bin_dir
        self.adapter = None
        self.adapter_runs = 0
        self.children = []
        self.kills = []  # {"kind", "landed", "at", ...}
        self.auto_commissioning = True

    # ---- processes ----

    def start_simulators(self):
        with open(self.args.scenario, "rb") as f:
            scenario = tomllib.load(f)["scenario"]
        self.systems = self.args.systems or int(scenario["systems"])
        self.interval = self.args.interval or float(scenario.get("interval_s", 300)) / float(scenario.get("speed", 60))
        fleet_probe = os.path.join(self.work, "probe.toml")
        base = (f'[scenario]\nname = "crash-loop"\nseed = {int(scenario.get("seed", 1))}\nsystems = {self.systems}\n'
                f'start = "now"\ninterval_s = {self.interval:g}\nspeed = 1\n'
                f'ac_coupled_fraction = {scenario.get("ac_coupled_fraction", 0.3)}\n'
                f'site_meter_fraction = {scenario.get("site_meter_fraction", 0.9)}\n')
        with open(fleet_probe, "w") as f:
            f.write(base)
        fleet = json.loads(subprocess.run([os.path.join(self.bins, "fleet-sim"), "--scenario", fleet_probe,
                                           "--print-fleet"], check=True, capture_output=True, text=True).stdout)
        self.fleet = fleet["systems"]
        ids = [s["systemId"] for s in self.fleet]
        # The truth the simulator knows: these systems' first inverter reports an error state from
        # the third record on (and stays so), the rest run normally.
        self.error_ids = set(self.rng.sample(ids, max(1, len(ids) // 100)))
        faults = "".join(f'\n[[fault]]\nat_s = {2 * self.interval:g}\nsystem_id = "{sid}"\nkind = "inverter_error"\n'
                         f'inverter_state = {ERROR_STATE}\n' for sid in sorted(self.error_ids))
        self.scenario_path = os.path.join(self.work, "scenario.toml")
        with open(self.scenario_path, "w") as f:
            f.write(base + faults)
        self.concerto = self.child("concerto-sim", [os.path.join(self.bins, "concerto-sim"), "--port", "0", "--email",
                                                    EMAIL, "--password", PASSWORD, "--rate-limit", "0"])
        self.ces = self.child("ces-sim", [os.path.join(self.bins, "ces-sim"), "--port", "0", "--api-key", API_KEY,
                                          "--scenario", self.scenario_path, "--rate-limit", "0"])
        self.concerto_url = "http://" + self.concerto.line(r"listening on http://(\S+)").group(1)
        self.ces_url = "http://" + self.ces.line(r"listening on http://(\S+)").group(1)
        secrets = os.path.join(self.work, "secrets.json")
        with open(secrets, "w") as f:
            json.dump({"ConcertoCredentials": {"email": EMAIL, "password": PASSWORD},
                       "CesCredentials": {"api_key": API_KEY}}, f)
        os.chmod(secrets, 0o600)
        self.secrets = secrets
        self.ingest_port, self.admin_port = free_port(), free_port()
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.ingest_url = f"http://127.0.0.1:{self.ingest_port}/v1/telemetry"

    def child(self, name, argv):
        c = Child(name, argv, self.work)
        self.children.append(c)
        return c

    def write_config(self):
        path = os.path.join(self.work, "deployment.toml")
        # offline_timeout: long enough that no system is OFFLINE during the run (the truth has none),
        # and it also bounds the startup grace, which therefore never ends: OFFLINE plays no part.
        with open(path, "w") as f:
            f.write(f"""[adapter]
name = "{ADAPTER_NAME}"
auto_commissioning = {"true" if self.auto_commissioning else "false"}
[concerto]
root_url = "{self.concerto_url}"
timeout_s = 30
max_requests_per_second = 1000
[ces]
root_url = "{self.ces_url}"
timeout_s = 30
max_requests_per_second = 1000
workers = 16
[schedule]
registrar_poll_s = {2 if self.systems <= 1000 else 10}
ces_state_poll_s = 3600
liveness_sweep_s = 2
[liveness]
offline_timeout_s = 3600
record_interval_s = {max(1, round(self.interval))}
[queues]
visibility_timeout_s = {self.args.visibility}
max_receives = 3
[secrets]
path = "{self.secrets}"
[storage]
path = "{os.path.join(self.work, 'adapter.db')}"
[telemetry]
listen = "127.0.0.1:{self.ingest_port}"
[admin]
listen = "127.0.0.1:{self.admin_port}"
""")
        self.config = path
        return path

    def start_adapter(self):
        self.write_config()
        for attempt in range(5):
            self.adapter_runs += 1
            adapter = self.child(f"adapter-{self.adapter_runs}",
                                 [os.path.join(self.bins, "pwrcell-adapter"), "serve", "--config", self.config])
            try:
                adapter.line(r"admin server listening on", timeout=120)
                adapter.line(r"ingest server listening on", timeout=30)
                self.adapter = adapter
                wait_for(lambda: http("GET", self.admin_url + "/readyz", timeout=5)[0] == 200, "readyz", 120, 0.1)
                return adapter
            except RunError as error:
                adapter.kill()
                if "exited" not in str(error) or attempt == 4:
                    raise
                time.sleep(1)  # a port still held by the killed process: try again
        raise RunError("serve would not start")

    def metrics(self):
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=30) as response:
            return parse_metrics(response.read().decode())

    # ---- Concerto ----

    def enroll(self, systems):
        def one(s):
            status, body = http("POST", self.concerto_url + "/admin/systems",
                                {"remoteId": s["systemId"], "name": s.get("siteName") or s["systemId"],
                                 "adapterName": ADAPTER_NAME})
            if status != 201:
                raise RunError(f"enrolling {s['systemId']}: {status} {body}")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, systems))

    def fault(self, **spec):
        status, body = http("POST", self.concerto_url + "/admin/faults", spec)
        if status not in (200, 201):
            raise RunError(f"fault {spec}: {status} {body}")

    # ---- kills ----

    def kill(self, kind, **facts):
        victim = self.adapter
        victim.kill()
        at = time.monotonic()
        entry = {"kind": kind, "adapter_run": self.adapter_runs, **facts}
        if kind == "sweep":
            # Landed when the sweep the kill followed had not logged its end.
            entry["landed"] = "schedule: liveness_sweep done" not in victim.read_from(entry.pop("sweep_at"))
        if getattr(self, "fleet_sim", None) is not None:
            self.fleet_position = len(self.fleet_sim.text())
        self.kills.append(entry)
        log(f"kill {len(self.kills)}: {kind} {json.dumps({k: v for k, v in entry.items() if k != 'kind'})}")
        self.start_adapter()
        entry["restart_s"] = round(time.monotonic() - at, 2)
        self.last_restart = time.monotonic()
        self.last_restart_wall = time.time()

    def pause(self):
        time.sleep(self.rng.uniform(self.args.min_gap, self.args.max_gap))

    def kill_commissioning(self):
        self.pause()
        base = metric(self.metrics(), "pwrcell_commissioning_steps_total")

        def in_flight():
            m = self.metrics()
            pending = metric(m, "pwrcell_devices_by_commissioning", state="PENDING")
            busy = metric(m, "pwrcell_queue_depth", queue="concerto", state="in_flight")
            steps = metric(m, "pwrcell_commissioning_steps_total")
            return (pending, busy, steps) if pending > 0 and busy > 0 and steps > base else None
        try:
            pending, busy, steps = wait_for(in_flight, "a commissioning in flight", 60, interval=0.05)
        except RunError:
            log("no commissioning in flight within 60 s: skipping this kill")
            return False
        self.kill("commissioning", landed=True, pending=int(pending), concerto_in_flight=int(busy),
                  steps_so_far=int(steps))
        return True

    def kill_batch(self):
        self.pause()

        def in_flight():
            m = self.metrics()
            ingest = metric(m, "pwrcell_queue_depth", queue="ingest", state="in_flight")
            telemetry = metric(m, "pwrcell_queue_depth", queue="concerto-telemetry", state="in_flight")
            return (ingest, telemetry) if ingest + telemetry > 0 else None
        ingest, telemetry = wait_for(in_flight, "a telemetry batch in flight", 120, interval=0.02)
        self.kill("batch", landed=True, ingest_in_flight=int(ingest), concerto_telemetry_in_flight=int(telemetry))

    def kill_sweep(self):
        self.pause()
        adapter = self.adapter
        marker = b"schedule: liveness_sweep started"
        with open(adapter.log_path, "rb") as f:
            text = f.read()
        last = text.rfind(marker)
        if last >= 0 and text.find(b"schedule: liveness_sweep done", last) < 0:
            # A sweep is running now (a long one: the first sweep after the fleet's records began
            # evaluates and queues an update for every system, minutes at 10,000): mid-sweep.
            self.kill("sweep", sweep_at=last)
            return
        position = [len(text)]

        def started():
            with open(adapter.log_path, "rb") as f:
                f.seek(position[0])
                chunk = f.read()
            found = chunk.find(marker)
            if found >= 0:
                return position[0] + found
            position[0] += max(0, len(chunk) - len(marker))  # a line may be half written
            return None
        at = wait_for(started, "a liveness sweep to start", 600, interval=0.002)
        self.kill("sweep", sweep_at=at)

    def kill_redrive(self):
        self.pause()
        dead = lambda: metric(self.metrics(), "pwrcell_dead_letters", queue="concerto-telemetry")  # noqa: E731
        before = dead()
        self.fault(kind="5xx", status=500, operation="ingestTelemetry")
        try:
            wait_for(lambda: dead() > before, "dead letters in concerto-telemetry", 180, interval=0.5)
        finally:
            self.fault(kind="clear")
        letters = int(dead())
        cli = self.child(f"redrive-{len(self.kills) + 1}",
                         [os.path.join(self.bins, "pwrcell-adapter"), "queues", "redrive", "concerto-telemetry",
                          "--config", self.config])
        time.sleep(self.rng.uniform(0.0, 0.02))  # the command takes ~50-100 ms to move a few letters
        running = cli.running()
        self.kill("redrive", landed=running, dead_letters=letters, redrive_running_at_kill=running)
        rc = cli.proc.wait(120)
        cli.stop()
        self.kills[-1]["redrive_exit"] = rc
        self.kills[-1]["redrive_output"] = cli.text().strip()[-300:]
        if rc != 0:
            raise RunError(f"queues redrive exited {rc}: {cli.text()[-1000:]}")

    # ---- the run ----

    def run(self):
        args = self.args
        self.start_simulators()
        kills = args.kills
        n_commission_kills = max(1, round(kills / 4)) if kills else 0
        others = [("batch", "sweep", "redrive")[i % 3] for i in range(kills - n_commission_kills)]
        self.rng.shuffle(others)
        commission = min(args.commission, self.systems)
        # Phase 1: commissioning.
        order = list(self.fleet)
        phase1, phase2 = order[:commission], order[commission:]
        started = time.monotonic()
        self.enroll(phase1)
        log(f"phase 1: enrolled {len(phase1)} systems; serve with auto-commissioning on")
        self.auto_commissioning = True
        self.start_adapter()
        done_kills = 0
        for _ in range(n_commission_kills):
            done_kills += self.kill_commissioning()
        wait_for(lambda: metric(self.metrics(), "pwrcell_devices_by_commissioning", state="DONE") == len(phase1),
                 f"{len(phase1)} systems commissioned", args.timeout, interval=1)
        commissioned_s = time.monotonic() - started
        log(f"phase 1: {len(phase1)} systems commissioned after {commissioned_s:.1f} s")
        # Phase 2: the whole fleet streams.
        self.auto_commissioning = False
        code = self.adapter.stop()
        if code != 0:
            raise RunError(f"serve exited {code} on SIGTERM")
        t = time.monotonic()
        self.enroll(phase2)
        log(f"phase 2: enrolled {len(phase2)} more systems in {time.monotonic() - t:.1f} s; serve without "
            "auto-commissioning")
        self.start_adapter()
        wait_for(lambda: metric(self.metrics(), "pwrcell_devices") == self.systems and
                 metric(self.metrics(), "pwrcell_queue_depth", queue="ces") == 0,
                 f"{self.systems} systems registered with metadata", args.timeout, interval=1)
        log(f"phase 2: {self.systems} systems registered; fleet-sim streaming a record every {self.interval:g} s")
        self.fleet_sim = self.child("fleet-sim", [os.path.join(self.bins, "fleet-sim"), "--scenario",
                                                  self.scenario_path, "--sink", self.ingest_url])
        self.stream_start = epoch(self.fleet_sim.line(r"systems from (\S+Z)").group(1))
        self.last_restart, self.last_restart_wall = time.monotonic(), time.time()
        self.fleet_position = 0
        for kind in others:
            getattr(self, "kill_" + kind)()
        # The end: let fleet-sim get its records through the last process, then stop it.
        def posting():
            text = self.fleet_sim.text()[self.fleet_position:]
            return text.rfind("failed (") < text.rfind("delivered ") or "failed (" not in text
        time.sleep(self.interval)
        wait_for(posting, "fleet-sim's posts to succeed again", 120)
        time.sleep(self.interval / 2)
        self.fleet_sim.stop()
        done = re.search(r"done: (\d+) intervals, (\d+) records produced, (\d+) delivered, (\d+) rejected, "
                         r"(\d+) not delivered", self.fleet_sim.text())
        if not done:
            raise RunError("fleet-sim printed no summary: " + self.fleet_sim.text()[-1000:])
        intervals, produced, delivered, rejected, undelivered = map(int, done.groups())
        self.fleet_summary = {"intervals": intervals, "produced": produced, "delivered": delivered,
                              "rejected": rejected, "not_delivered": undelivered}
        log(f"fleet-sim: {self.fleet_summary}")
        return self.converge_and_count(intervals, delivered, undelivered, commission, done_kills + len(others))

    def converge_and_count(self, intervals, delivered, undelivered, commission, kills_done):
        # Records acknowledged: every interval's records when fleet-sim delivered everything; else the
        # last interval (the one in retry when it stopped) is left out, as not accepted.
        counted_intervals = intervals if undelivered == 0 else intervals - 1
        expected_records = self.systems * counted_intervals
        systems = {a["remoteId"]: a for a in get(self.concerto_url + "/admin/assets?type=SYSTEM")["assets"]}
        # Dead letters the kills caused (the redrive kills leave none: they redrove them): counted, then
        # moved back as an operator would, since a dead letter is kept, not lost.
        m = self.metrics()
        self.dead_letters_before_end = {q: int(metric(m, "pwrcell_dead_letters", queue=q))
                                        for q in ("ingest", "concerto", "concerto-telemetry", "ces")}
        for q, n in self.dead_letters_before_end.items():
            if n:
                redrive = subprocess.run([os.path.join(self.bins, "pwrcell-adapter"), "queues", "redrive", q,
                                          "--config", self.config], capture_output=True, text=True, timeout=300)
                log(f"{n} dead letters in {q} at the end; redrive: {redrive.returncode} {redrive.stdout.strip()}")
        truth = {sid: "ERROR" if sid in self.error_ids else "ONLINE" for sid in systems}

        def states_wrong():
            assets = get(self.concerto_url + "/admin/assets?type=SYSTEM")["assets"]
            return sum(1 for a in assets if a["remoteState"] != truth.get(a["remoteId"]))

        def drained(m):
            return all(metric(m, "pwrcell_queue_depth", queue=q) == 0
                       for q in ("ingest", "concerto", "concerto-telemetry"))

        def converged():
            by_metric = get(self.concerto_url + "/admin/stats")["pointsByMetric"]
            return min(by_metric.get("INVERTER_STATE", 0), by_metric.get("SYSTEM_MODE", 0)) >= expected_records and drained(self.metrics()) and states_wrong() == 0
        try:
            wait_for(converged, "convergence", self.args.timeout, interval=1 if self.systems <= 1000 else 3)
            converge_s = time.monotonic() - self.last_restart
        except RunError as error:
            log(f"did not converge: {error}")
            converge_s = None
        log("counting")
        # Concerto's assets as of now (the map above is from before the convergence).
        systems = {a["remoteId"]: a for a in get(self.concerto_url + "/admin/assets?type=SYSTEM")["assets"]}
        # Lost records: (system, record time) with no INVERTER_STATE or no SYSTEM_MODE point.
        id_of = {sid: a["id"] for sid, a in systems.items()}
        times = [self.stream_start + k * self.interval for k in range(counted_intervals)]
        lost = {}
        for name in ("INVERTER_STATE", "SYSTEM_MODE"):
            points = get(self.concerto_url + f"/admin/telemetry?metric={name}", timeout=600)["points"]
            have = {(p["assetId"], epoch(p["timestamp"])) for p in points}
            missing = [(sid, t) for sid in id_of for t in times if (id_of[sid], t) not in have]
            lost[name] = missing
        lost_records = {m for ms in lost.values() for m in ms}
        stats = get(self.concerto_url + "/admin/stats")
        m = self.metrics()
        # Duplicates among sites and assets.
        assets = get(self.concerto_url + "/admin/assets")["assets"]
        sites = get(self.concerto_url + "/admin/sites")["sites"]
        by_key = {}
        for a in assets:
            by_key[(a["assetType"], a["remoteId"])] = by_key.get((a["assetType"], a["remoteId"]), 0) + 1
        dup_assets = sum(n - 1 for n in by_key.values() if n > 1)
        by_site_key = {}
        for s in sites:
            by_site_key[s["remoteId"]] = by_site_key.get(s["remoteId"], 0) + 1
        dup_sites = sum(n - 1 for n in by_site_key.values() if n > 1)
        by_id = {a["id"]: a for a in assets}
        expected_inverters = {s["systemId"]: 1 for s in self.fleet}  # no fault adds a second one
        commissioned_ids = [s["systemId"] for s in self.fleet[:commission]]
        extra_inverters = 0
        systems_without_site = 0
        sites_per_system = {}
        for sid in commissioned_ids:
            system = systems[sid]
            inverters = [c for c in system["childIds"] if by_id[c]["assetType"] == "INVERTER"]
            extra_inverters += max(0, len(inverters) - expected_inverters[sid])
            if system["siteId"] is None:
                systems_without_site += 1
        for s in sites:
            for a in s.get("assetIds", []):
                if a in by_id and by_id[a]["assetType"] == "SYSTEM":
                    sites_per_system[a] = sites_per_system.get(a, 0) + 1
        dup_sites += sum(n - 1 for n in sites_per_system.values() if n > 1)
        dup_sites += max(0, len(sites) - commission)
        # States: SYSTEM assets and the sites of commissioned systems against the truth; the adapter's
        # own record against Concerto's.
        wrong_system_states = states_wrong()
        site_by_id = {s["id"]: s for s in sites}
        wrong_site_states = sum(1 for sid in commissioned_ids
                                if systems[sid]["siteId"] in site_by_id
                                and site_by_id[systems[sid]["siteId"]].get("remoteState") not in (None, truth[sid]))
        devices, after = [], None
        while True:
            page = get(self.admin_url + "/api/devices?limit=5000" + (f"&after={after}" if after else ""))
            devices.extend(page["devices"])
            after = page.get("next")
            if not after:
                break
        adapter_vs_concerto = sum(1 for d in devices
                                  if d["remote_id"] in systems and d["remote_state"] != systems[d["remote_id"]]["remoteState"])
        duplicate_devices = len(devices) - len({d["remote_id"] for d in devices})
        landed = {}
        for k in self.kills:
            landed.setdefault(k["kind"], [0, 0])
            landed[k["kind"]][0] += 1
            landed[k["kind"]][1] += 1 if k.get("landed") else 0
        report = {
            "systems": self.systems, "commissioned_systems": commission, "record_interval_s": self.interval,
            "kills": len(self.kills), "kills_by_kind": {k: {"kills": v[0], "landed": v[1]} for k, v in landed.items()},
            "fleet_sim": self.fleet_summary,
            "records_accepted_counted": expected_records,
            "accepted_records_lost": len(lost_records),
            "lost_examples": sorted(lost_records)[:5],
            "points_stored_in_concerto": stats["pointsStored"],
            "points_duplicated_in_concerto": stats["duplicates"],
            "points_rejected_by_concerto": stats["rejectedPoints"],
            "duplicate_assets": dup_assets, "duplicate_sites": dup_sites, "extra_inverters": extra_inverters,
            "duplicate_devices_in_adapter": duplicate_devices,
            "commissioned_systems_without_site": systems_without_site,
            "wrong_system_states": wrong_system_states, "wrong_site_states": wrong_site_states,
            "adapter_state_differs_from_concerto": adapter_vs_concerto,
            "error_systems": len(self.error_ids),
            "unmatched_records": int(metric(m, "pwrcell_telemetry_records_total", outcome="unmatched")),
            "dead_letters_before_end_redrive": self.dead_letters_before_end,
            "dead_letters_at_end": int(metric(m, "pwrcell_dead_letters")),
            "converge_after_last_restart_s": round(converge_s, 1) if converge_s is not None else None,
            "kill_log": self.kills,
        }
        print(json.dumps(report, indent=2), flush=True)
        must_be_zero = ["accepted_records_lost", "duplicate_assets", "duplicate_sites", "extra_inverters",
                        "duplicate_devices_in_adapter", "commissioned_systems_without_site", "wrong_system_states",
                        "wrong_site_states", "adapter_state_differs_from_concerto"]
        bad = [k for k in must_be_zero if report[k] != 0]
        if converge_s is None:
            bad.append("did not converge")
        if kills_done != self.args.kills:
            bad.append(f"{kills_done} of {self.args.kills} kills made")
        print("RESULT: " + ("OK" if not bad else "FAILED: " + ", ".join(bad)), flush=True)
        return 0 if not bad else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default=os.path.join(ROOT, "sim", "scenarios", "load-10k.toml"))
    parser.add_argument("--systems", type=int, default=0, help="systems of the scenario's fleet (default: all)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0,
                        help="wall seconds between a system's records (default: the scenario's interval / speed)")
    parser.add_argument("--commission", type=int, default=200, help="systems commissioned in phase 1")
    parser.add_argument("--min-gap", type=float, default=2.0, help="shortest pause before looking for a kill moment")
    parser.add_argument("--max-gap", type=float, default=8.0, help="longest such pause")
    parser.add_argument("--visibility", type=int, default=10,
                        help="[queues] visibility_timeout_s (also the first retry delay, up to 5 s)")
    parser.add_argument("--timeout", type=float, default=1800, help="longest wait for one step (seconds)")
    parser.add_argument("--bin-dir", default=os.environ.get("PWRCELL_BIN_DIR", os.path.join(ROOT, "build", "bin")))
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, store)")
    args = parser.parse_args()
    if args.kills < 0 or args.systems < 0 or args.commission < 0 or args.min_gap > args.max_gap:
        parser.error("--kills, --systems and --commission must be >= 0 and --min-gap <= --max-gap")
    work = tempfile.mkdtemp(prefix="pwrcell-crash-loop-")
    run = Run(args, work)
    failed = True
    try:
        code = run.run()
        failed = code != 0
        return code
    except RunError as error:
        print(f"crash_loop: {error}", file=sys.stderr, flush=True)
        return 2
    finally:
        for child in reversed(run.children):
            child.stop(30)
        if args.keep or failed:
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
