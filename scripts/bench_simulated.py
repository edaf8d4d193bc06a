#!/usr/bin/env python3
"""Benchmark: N simulated systems at a 1 s record interval in `pwrcell-adapter serve`.

Starts concerto-sim (--rate-limit 0) and ces-sim on free ports, enrolls N simulated SYSTEM assets,
starts the adapter ([simulated] record_interval_s = 1), waits until every system produces
records (steady state), then measures a window of --duration seconds:

- records synthesized in the window: expected N x duration (one per system per second);
- every record forwarded: for each metric the synthesized records carry, Concerto must hold
  exactly one point per (system, second of the window), no more and no fewer; duplicates and
  rejected points from concerto-sim's /admin/stats;
- the adapter's CPU seconds (utime + stime from /proc/<pid>/stat) over the window, its peak RSS
  (VmHWM from /proc/<pid>/status), the largest ingest / Concerto backlog seen, and how long the
  backlog of the window took to reach Concerto after it ended.

Auto-commissioning is off by default: commissioning 1,000 systems is ~40,000 Concerto calls
(lookup and create of the site, inverter, batteries, PV links and meter of each), minutes against
the Python simulator, and a commissioned system maps ~50-80 points per record instead of 8 (the
inverter channel and the two state codes on the SYSTEM asset), which measures concerto-sim's
GraphQL validation more than the adapter. --auto-commissioning turns it on (the steady state then
begins once every system is commissioned, and only the SYSTEM asset's INVERTER_STATE and
SYSTEM_MODE points are counted exactly; 100 systems take ~30 s to commission).

Usage: scripts/bench_simulated.py [--systems 1000] [--duration 60] [--bin-dir build/bin] [--keep]
Exit status: 0 when every record of the window was forwarded exactly once, 1 otherwise.
"""

import argparse
import calendar
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
EMAIL, PASSWORD, API_KEY = "bench@example.com", "bench-password", "bench-ces-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def metrics(admin_url):
    with urllib.request.urlopen(admin_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
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


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    return 0.0


def epoch(timestamp):
    return calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))


def wait_for(predicate, what, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


class Child:
    def __init__(self, name, argv, workdir):
        self.name = name
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir,
                                     start_new_session=True)

    def line(self, pattern, timeout=60):
        regex = re.compile(pattern)

        def found():
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: {self.name} exited with {self.proc.returncode}; see {self.log_path}")
            with open(self.log_path, errors="replace") as f:
                return regex.search(f.read())
        return wait_for(found, f"{self.name}: /{pattern}/", timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--duration", type=int, default=60, help="seconds of steady state measured")
    parser.add_argument("--bin-dir", default=os.environ.get("PWRCELL_BIN_DIR", os.path.join(ROOT, "build", "bin")))
    parser.add_argument("--auto-commissioning", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    parser.add_argument("--storage-dir", help="where the adapter's SQLite file goes (default: the work directory)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="pwrcell-bench-")
    children = []
    try:
        return run(args, work, children)
    finally:
        for child in reversed(children):
            child.stop()
        if args.storage_dir and not args.keep:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(os.path.join(args.storage_dir, f"adapter-{os.getpid()}.db{suffix}"))
                except FileNotFoundError:
                    pass
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work, children):
    bins = args.bin_dir
    scenario = os.path.join(work, "scenario.toml")
    with open(scenario, "w") as f:  # ces-sim needs a fleet; simulated systems never reach it
        f.write('[scenario]\nname = "bench"\nseed = 1\nsystems = 1\nstart = "now"\ninterval_s = 300\nspeed = 1\n')
    concerto = Child("concerto-sim", [os.path.join(bins, "concerto-sim"), "--port", "0", "--email", EMAIL,
                                      "--password", PASSWORD, "--rate-limit", "0"], work)
    children.append(concerto)
    ces = Child("ces-sim", [os.path.join(bins, "ces-sim"), "--port", "0", "--api-key", API_KEY, "--scenario",
                            scenario, "--rate-limit", "0"], work)
    children.append(ces)
    concerto_url = "http://" + concerto.line(r"listening on http://(\S+)").group(1)
    ces_url = "http://" + ces.line(r"listening on http://(\S+)").group(1)

    started = time.monotonic()
    for i in range(args.systems):
        status, body = http("POST", concerto_url + "/admin/systems",
                            {"remoteId": f"BENCH-{i:05d}", "name": f"bench {i}", "adapterName": "pwrcell-adapter",
                             "simulated": True})
        if status != 201:
            raise SystemExit(f"bench: enrolling system {i}: {status} {body}")
    print(f"enrolled {args.systems} simulated systems in {time.monotonic() - started:.1f} s")

    secrets = os.path.join(work, "secrets.json")
    with open(secrets, "w") as f:
        json.dump({"ConcertoCredentials": {"email": EMAIL, "password": PASSWORD},
                   "CesCredentials": {"api_key": API_KEY}}, f)
    os.chmod(secrets, 0o600)
    config = os.path.join(work, "deployment.toml")
    with open(config, "w") as f:
        f.write(f"""[adapter]
name = "pwrcell-adapter"
auto_commissioning = {"true" if args.auto_commissioning else "false"}
[concerto]
root_url = "{concerto_url}"
max_requests_per_second = 1000
[ces]
root_url = "{ces_url}"
[secrets]
path = "{secrets}"
[storage]
path = "{os.path.join(args.storage_dir or work, f'adapter-{os.getpid()}.db')}"
[telemetry]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[simulated]
record_interval_s = 1
""")
    adapter = Child("adapter", [os.path.join(bins, "pwrcell-adapter"), "serve", "--config", config], work)
    children.append(adapter)
    admin_url = "http://" + adapter.line(r"admin server listening on (\S+)").group(1)
    pid = adapter.proc.pid

    # Steady state: every system registered (and commissioned), and a full round of records.
    def registered():
        samples = metrics(admin_url)
        done = metric(samples, "pwrcell_devices_by_commissioning", state="DONE")
        return metric(samples, "pwrcell_devices", kind="simulated") == args.systems and \
            (not args.auto_commissioning or done == args.systems)
    wait_for(registered, f"{args.systems} systems registered", 1800 if args.auto_commissioning else 300)
    base = metric(metrics(admin_url), "pwrcell_simulated_records_total")
    wait_for(lambda: metric(metrics(admin_url), "pwrcell_simulated_records_total") >= base + 2 * args.systems,
             "two rounds of records", 120)
    print(f"steady state after {time.monotonic() - started:.1f} s")

    # The window: whole seconds [t0, t1) of record timestamps.
    t0 = int(time.time()) + 1
    while time.time() < t0:
        time.sleep(0.01)
    cpu0, m0, s0, wall0 = cpu_seconds(pid), metrics(admin_url), http("GET", concerto_url + "/admin/stats")[1], \
        time.monotonic()
    max_ingest = max_concerto = 0
    while time.time() < t0 + args.duration:
        samples = metrics(admin_url)
        max_ingest = max(max_ingest, metric(samples, "pwrcell_queue_depth", queue="ingest"))
        max_concerto = max(max_concerto, metric(samples, "pwrcell_queue_depth", queue="concerto-telemetry"))
        time.sleep(1)
    t1 = t0 + args.duration
    cpu1, m1, wall1 = cpu_seconds(pid), metrics(admin_url), time.monotonic()
    rss_peak, rss_now = proc_status(pid, "VmHWM"), proc_status(pid, "VmRSS")

    # Which metrics one record carries: those of the first system's points (any single record).
    first_asset = http("GET", concerto_url + "/admin/assets?type=SYSTEM")[1]["assets"][0]["id"]
    sample = http("GET", f"{concerto_url}/admin/telemetry?assetId={first_asset}&limit=200")[1]["points"]
    per_record = sorted({p["metric"] for p in sample if p["timestamp"] == sample[-1]["timestamp"]}) \
        if not args.auto_commissioning else None
    expected_records = args.systems * args.duration

    def window_count(metric_name):
        points = http("GET", f"{concerto_url}/admin/telemetry?metric={metric_name}", timeout=300)[1]["points"]
        return sum(1 for p in points if t0 <= epoch(p["timestamp"]) < t1)

    drain_started = time.monotonic()
    records_in_window = 0
    while time.monotonic() - drain_started < 180:
        records_in_window = window_count("INVERTER_STATE")
        if records_in_window >= expected_records:
            break
        time.sleep(2)
    drain_s = time.monotonic() - drain_started
    s1 = http("GET", concerto_url + "/admin/stats")[1]
    counts = {name: window_count(name) for name in (per_record or ["INVERTER_STATE", "SYSTEM_MODE"])}
    points_expected = expected_records * len(counts)
    points_in_window = sum(counts.values())

    records = metric(m1, "pwrcell_simulated_records_total") - metric(m0, "pwrcell_simulated_records_total")
    queued = metric(m1, "pwrcell_telemetry_points_total") - metric(m0, "pwrcell_telemetry_points_total")
    ces_requests = len(http("GET", ces_url + "/admin/requests")[1]["requests"])
    cpu = cpu1 - cpu0
    wall = wall1 - wall0
    ok = records_in_window == expected_records and points_in_window == points_expected and \
        s1["duplicates"] == s0["duplicates"] and s1["rejectedPoints"] == s0["rejectedPoints"]
    report = {
        "systems": args.systems, "record_interval_s": 1, "auto_commissioning": args.auto_commissioning,
        "window_s": args.duration, "wall_s": round(wall, 2),
        "records_synthesized_metric_delta": int(records),  # the counter between the two snapshots
        "records_expected_in_window": expected_records,
        "records_in_concerto_for_window": records_in_window,
        "metrics_checked_per_record": sorted(counts),
        "points_in_concerto_for_window": points_in_window, "points_expected_for_window": points_expected,
        "points_queued_by_adapter_during_window": int(queued),
        "concerto_points_stored_total": s1["pointsStored"],
        "concerto_duplicates_during_run": s1["duplicates"] - s0["duplicates"],
        "concerto_rejected_during_run": s1["rejectedPoints"] - s0["rejectedPoints"],
        "ces_requests": ces_requests,
        "adapter_cpu_s": round(cpu, 2), "adapter_cpu_share_of_one_core": round(cpu / wall, 3),
        "adapter_peak_rss_mib": round(rss_peak, 1), "adapter_rss_at_end_mib": round(rss_now, 1),
        "max_ingest_backlog": int(max_ingest), "max_concerto_telemetry_backlog": int(max_concerto),
        "drain_after_window_s": round(drain_s, 1),
        "every_record_forwarded": ok,
    }
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
