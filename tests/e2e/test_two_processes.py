"""Two `serve` processes on one store file behave as one adapter (SPEC section 8: "several `serve`
instances may share one store, because nothing the processes share lives in memory").

Both run at once against the same concerto-sim and ces-sim, with the same configuration and
SQLite file (`[storage] path`), each with its own ingest and admin port. The fleet's telemetry is
split between the two ingest endpoints: one fleet-sim per endpoint, each over a copy of the
scenario in which the other half of the fleet is silent from the start (fleet-sim has no option to
stream a subset; ces-sim serves the whole, unfaulted fleet). After convergence:

- Concerto holds exactly one site per CES site and one asset per component (no duplicate from two
  processes commissioning at once), and every system, component and site is ONLINE;
- no remote_state is sent twice in a row to any asset or site (concerto-sim's history);
- records posted by the test itself (known timestamps, half to each endpoint, concurrently) are in
  Concerto point for point, each once (concerto-sim counts every repeat in /admin/stats
  `duplicates`);
- one registrar listing at a time: concerto-sim keeps no request log with times, so the adapters
  talk to it through a recording proxy here (ConcertoRecorder). With every `allAssets` page slowed
  down (a concerto-sim `slow` fault) no two page requests may be in flight at once, over the whole
  run either. (How often the two list together at normal speed is printed, not asserted: the
  listing lease keeps listings apart, but each process polls on its own schedule.)

Then the second process gets SIGTERM (after accepting records it has not processed yet), and the
first carries on alone: those records reach Concerto once, a system made silent goes OFFLINE
exactly once (decided by the remaining process's liveness sweep), the others stay ONLINE, and
every record the fleet delivered to either process is in Concerto once."""

from http.client import HTTPConnection
import json
import os
import re
import subprocess
import threading
import time
import unittest
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from e2e_checks import check_commissioned, wait_all_commissioned
from harness import FLEET_SIM, Process, Stack, http, live_scenario, wait_for
from records import concerto_roles, decode_record, expected_points, iso, parse_iso, read_file_sink, series_of

SYSTEMS = 6
SEED = 6262
OFFLINE_TIMEOUT_S = 8
SWEEP_S = 1
REGISTRAR_POLL_S = 1
PAGE_SIZE = 30         # several allAssets pages per listing
SLOW_PAGE_S = 0.5      # the delay of every allAssets page during the overlap window
SLACK_S = 5            # on top of offline_timeout + one sweep (busy 2-core CI, whole-second stamps)
OFFLINE_RE = re.compile(r"no telemetry for (\d+) s")


def offline_after_online(history):
    """The first OFFLINE entry after an ONLINE one, or None."""
    online = False
    for entry in history:
        online = online or entry["state"] == "ONLINE"
        if online and entry["state"] == "OFFLINE":
            return entry
    return None


class ConcertoRecorder:
    """A reverse proxy in front of concerto-sim that records, for every POST /graphql, its
    operation, its `page` variable and when it was in flight (time.monotonic()). Requests are
    forwarded unchanged (one upstream connection per request); answers come back unchanged."""

    _HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
            "expect", "host", "content-length"}

    def __init__(self, target):
        parts = urllib.parse.urlsplit(target)
        self.host, self.port = parts.hostname, parts.port
        self.calls = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: D401 - quiet
                pass

            def do_POST(self):
                recorder.forward(self)

            def do_GET(self):
                recorder.forward(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.2,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def forward(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        operation, page = None, None
        if handler.command == "POST" and handler.path.startswith("/graphql") and body:
            try:
                doc = json.loads(body)
                operation = doc.get("operationName")
                if not operation:
                    match = re.match(r"\s*(?:query|mutation)\s+(\w+)", doc.get("query") or "")
                    operation = match.group(1) if match else "<anonymous>"
                if "allAssets" in (doc.get("query") or ""):
                    operation = "allAssets"
                    page = (doc.get("variables") or {}).get("page")
            except (ValueError, AttributeError):
                operation = "<unparsed>"
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in self._HOP}
        started = time.monotonic()
        try:
            upstream = HTTPConnection(self.host, self.port, timeout=120)
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            status, reason, data = response.status, response.reason, response.read()
            answer_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in self._HOP]
            upstream.close()
        except OSError as error:
            status, reason, data, answer_headers = 502, "Bad Gateway", str(error).encode(), []
        ended = time.monotonic()
        if operation is not None:
            with self.lock:
                self.calls.append({"operation": operation, "page": page, "start": started, "end": ended,
                                   "status": status})
        handler.send_response(status, reason)
        for key, value in answer_headers:
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def listing_pages(self, since=0.0):
        with self.lock:
            return [c for c in self.calls if c["operation"] == "allAssets" and c["start"] >= since]


def overlapping(calls):
    """Pairs of calls that were in flight at the same time."""
    ordered = sorted(calls, key=lambda c: c["start"])
    pairs, latest = [], None
    for call in ordered:
        if latest is not None and call["start"] < latest["end"]:
            pairs.append((latest, call))
        if latest is None or call["end"] > latest["end"]:
            latest = call
    return pairs


def scenario_text(silent_indexes, start=None):
    """The test's scenario; `silent_indexes` send nothing from the start (fleet-sim's share of one
    endpoint); `start` replaces the live clock by a fixed start (records with known timestamps)."""
    faults = "".join(f'[[fault]]\nat_s = 0\nsystem = {i}\nkind = "silent"\n' for i in sorted(silent_indexes))
    text = live_scenario(systems=SYSTEMS, seed=SEED, faults=faults, site_meter_fraction=0.7)
    if start is not None:
        text = text.replace('start = "now"', f'start = "{start}"')
    return text


def post_records(test, url, blobs):
    if test.stack.backend == "aws":  # telemetry enters through the Kinesis stream both processes read
        for blob in blobs:
            test.stack.put_kinesis(blob)
        return
    for blob in blobs:
        status, body = http("POST", url, blob, headers={"Content-Type": "application/x-protobuf"})
        test.assertEqual(status, 200, body)
        test.assertEqual(body.get("accepted"), 1, body)


class TwoProcessesTest(unittest.TestCase):
    def setUp(self):
        self.stack = None
        self.recorder = None

    # ---- helpers ----

    def write(self, name, text):
        path = os.path.join(self.stack.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def fleet_process(self, name, silent_indexes, sink):
        path = self.write(f"{name}.toml", scenario_text(silent_indexes))
        if self.stack.backend == "aws":  # both processes read the one Kinesis stream
            return Process(name, [FLEET_SIM, "--scenario", path, "--sink",
                                  "kinesis:" + self.stack.aws_names["telemetry_stream"]], self.stack.dir,
                           env=self.stack.aws_env())
        return Process(name, [FLEET_SIM, "--scenario", path, "--sink", sink], self.stack.dir)

    def known_records(self, name, start):
        """Records of the whole fleet on a fixed past clock (5 ticks, file sink); [(systemId, blob)]."""
        path = self.write(f"{name}.toml", scenario_text((), start=start))
        out = os.path.join(self.stack.dir, f"{name}.bin")
        run = subprocess.run([FLEET_SIM, "--scenario", path, "--sink", "file:" + out, "--speed", "1000",
                              "--duration", "4"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        blobs = read_file_sink(out)
        self.assertEqual(len(blobs), 5 * SYSTEMS)
        return blobs

    def expected_of(self, blobs):
        expected = {}
        for blob in blobs:
            record = decode_record(blob)
            system = self.by_rcpn[record["inverterId"][0]]
            expected.update(expected_points(record, self.roles[system["systemId"]])[0])
        return expected

    def wait_points_once(self, expected, what, timeout=90):
        """Waits until every expected (asset, metric, timestamp) is stored with its value; then each
        is there once (concerto-sim stores a key once and counts a repeat as a duplicate)."""
        metrics = sorted({m for _, m, _ in expected})

        def missing(names):
            stored = {}
            for name in names:
                for p in self.stack.telemetry(metric_name=name):
                    key = (p["assetId"], p["metric"], p["timestamp"])
                    self.assertNotIn(key, stored, f"{what}: point stored twice: {key}")
                    stored[key] = p["value"]
            return [k for k in expected if k[1] in names and k not in stored], stored

        # First the one point every record yields (a small series), then all of them.
        try:
            wait_for(lambda: not missing(["INVERTER_STATE"])[0], f"{what}: the records' INVERTER_STATE points",
                     timeout, interval=1.0)
            wait_for(lambda: not missing(metrics)[0], f"{what}: {len(expected)} points in Concerto", 60,
                     interval=2.0)
        except AssertionError as error:
            gone = missing(metrics)[0]
            raise AssertionError(f"{error}; {len(gone)} missing, first: {sorted(gone)[:5]}") from None
        _, stored = missing(metrics)
        wrong = [(k, stored[k], e.value) for k, e in expected.items()
                 if abs(stored[k] - e.value) > 1e-6 * max(1.0, abs(e.value))]
        self.assertEqual(wrong[:5], [], f"{what}: points with wrong values")

    def history_by_target(self):
        out = {}
        for entry in self.stack.remote_states():
            out.setdefault((entry["kind"], entry["id"]), []).append(entry)
        return out

    def assert_no_repeated_state(self):
        for target, history in self.history_by_target().items():
            for before, entry in zip([None] + history, history):
                self.assertNotEqual(entry["state"], entry["previous"], f"{target}: state re-sent: {entry}")
                if before is not None:
                    self.assertNotEqual(entry["state"], before["state"], f"{target}: repeated: {history}")

    @staticmethod
    def stripped(history):
        """Without a first OFFLINE sent before the system was ever heard (SPEC 4 rule 1: a
        registered, never-heard system is OFFLINE; whether it is sent depends on timing)."""
        if history and history[0]["state"] == "OFFLINE" and history[0]["previous"] is None:
            return history[1:]
        return history

    def targets_of(self, roles):
        targets = {"system": ("asset", roles.system), "inverter": ("asset", roles.inverter),
                   "site": ("site", roles.site)}
        if roles.site_meter:
            targets["site_meter"] = ("asset", roles.site_meter)
        return targets

    def all_online(self):
        assets = {a["id"]: a for a in self.stack.assets()}
        sites = {s["id"]: s for s in self.stack.sites()}
        for roles in self.roles.values():
            for name, (kind, ident) in self.targets_of(roles).items():
                state = (sites if kind == "site" else assets)[ident].get("remoteState")
                if state != "ONLINE":
                    return False
        return True

    def fleet_delivered(self, process):
        match = re.search(r"done: \d+ intervals, (\d+) records produced, (\d+) delivered, (\d+) rejected, "
                          r"(\d+) not delivered", process.log())
        self.assertIsNotNone(match, f"{process.name} printed no summary:\n{process.log()[-2000:]}")
        produced, delivered, rejected, undelivered = map(int, match.groups())
        self.assertEqual((rejected, undelivered), (0, 0), process.log()[-2000:])
        self.assertEqual(produced, delivered)
        return delivered

    # ---- the test ----

    def test_two_serve_processes_on_one_store_act_as_one_adapter(self):
        t0 = time.monotonic()
        self.stack = stack = Stack(self, scenario=scenario_text(()),
                                   config={"liveness.offline_timeout_s": OFFLINE_TIMEOUT_S,
                                           "schedule.liveness_sweep_s": SWEEP_S,
                                           "schedule.registrar_poll_s": REGISTRAR_POLL_S,
                                           "concerto.page_size": PAGE_SIZE})
        stack.start(adapter=False)
        self.recorder = ConcertoRecorder(stack.concerto_url)
        self.addCleanup(self.recorder.close)
        stack.extra_config["concerto.root_url"] = self.recorder.url
        first = stack.start_adapter()
        second = stack.start_adapter(additional=True)
        self.assertNotEqual(first.ingest_url, second.ingest_url)

        systems = stack.fleet_systems()
        self.assertEqual(len(systems), SYSTEMS)
        ids = stack.enroll_fleet()
        wait_all_commissioned(stack, systems, timeout=90)
        self.by_rcpn = {s["inverters"][0]["rcpn"]: s for s in systems}
        self.roles = {i: concerto_roles(stack, i) for i in ids}
        self.assertTrue(any(r.site_meter for r in self.roles.values()), "the fleet has no site meter")

        # The fleet's telemetry, split: even systems to the first process, odd ones to the second.
        evens = {i for i in range(SYSTEMS) if i % 2 == 0}
        odds = set(range(SYSTEMS)) - evens
        fleet_a = self.fleet_process("fleet-a", odds, first.ingest_url)
        fleet_b = self.fleet_process("fleet-b", evens, second.ingest_url)
        self.addCleanup(fleet_a.stop)
        self.addCleanup(fleet_b.stop)
        try:
            wait_for(self.all_online, "every system, component and site ONLINE in Concerto", timeout=60)
        except AssertionError as error:
            raise AssertionError(f"{error}; history: {stack.remote_states()}") from None
        for process in (first, second):
            self.assertTrue(process.running(), process.log()[-3000:])

        # Exactly the commissioned structure: one site per CES site, one asset per component.
        check_commissioned(self, stack, systems)

        # Records with known timestamps (a day ago), half to each endpoint, at the same time.
        day_ago = (int(time.time()) // 3600) * 3600 - 86400
        known = self.known_records("known-1", iso(day_ago))
        posters = [threading.Thread(target=post_records, args=(self, p.ingest_url, known[n::2]))
                   for n, p in enumerate((first, second))]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join(120)
        self.wait_points_once(self.expected_of(known), "records posted to both processes")

        # The registrar at normal speed, observed (not asserted): each process polls on its own
        # schedule and the listing lease only keeps listings from overlapping, so two processes may
        # list up to twice per registrar_poll_s (how often depends on the phase of their schedules).
        window_start = time.monotonic()
        wait_for(lambda: time.monotonic() - window_start >= 10 * REGISTRAR_POLL_S, "10 s of registrar polls",
                 timeout=60)
        window = time.monotonic() - window_start
        starts = [c["start"] for c in self.recorder.listing_pages(window_start) if c["page"] == 1]
        gaps = [round(b - a, 2) for a, b in zip(starts, starts[1:])]
        print(f"normal speed: {len(starts)} listings in {window:.1f} s (one process polls every "
              f"{REGISTRAR_POLL_S} s); gaps between listing starts: {gaps}")
        self.assertGreater(len(starts), 0, "no registrar listing in 10 s")

        # Slow listings: pages in flight for SLOW_PAGE_S each; two listings at once would overlap.
        stack.concerto_fault(kind="slow", delay_s=SLOW_PAGE_S, operation="allAssets")
        slow_start = time.monotonic()
        wait_for(lambda: len([c for c in self.recorder.listing_pages(slow_start) if c["page"] == 1]) >= 5,
                 "5 slow listings", timeout=90)
        stack.concerto_fault(kind="clear")
        pages = self.recorder.listing_pages(slow_start)
        listings = [c for c in pages if c["page"] == 1]
        print(f"slow pages: {len(listings)} listings, {len(pages)} pages in {time.monotonic() - slow_start:.1f} s")
        self.assertGreater(len(pages), len(listings), "a listing should span several pages")
        clash = overlapping(self.recorder.listing_pages(t0))
        self.assertEqual([(a["page"], round(a["start"] - t0, 2), round(a["end"] - t0, 2), b["page"],
                           round(b["start"] - t0, 2), round(b["end"] - t0, 2)) for a, b in clash][:5], [],
                         f"{len(clash)} allAssets requests in flight at the same time (page, start, end) x 2")

        self.assert_no_repeated_state()
        self.assertTrue(self.all_online(), stack.remote_states())

        # ---- the second process stops; the first carries on ----
        silent_index = 1  # an odd system: its records went to the second process
        silent_id = systems[silent_index]["systemId"]
        self.assertEqual(fleet_b.stop(), 0, fleet_b.log()[-2000:])
        delivered_b = self.fleet_delivered(fleet_b)
        fleet_b_stopped = time.time()
        # Accepted, not yet processed, when SIGTERM comes: nothing accepted may be lost.
        known_2 = self.known_records("known-2", iso(day_ago + 3600))
        post_records(self, second.ingest_url, known_2)
        code = second.stop()
        self.assertEqual(code, 0, second.log()[-3000:])
        # The rest of the odd systems stream to the first process now (a fresh fleet-sim; it starts
        # in a later second, so that no timestamp of fleet-b repeats).
        wait_for(lambda: time.time() >= int(fleet_b_stopped) + 1.2, "a new second")
        fleet_c = self.fleet_process("fleet-c", evens | {silent_index}, first.ingest_url)
        self.addCleanup(fleet_c.stop)

        self.wait_points_once(self.expected_of(known_2), "records accepted by the stopped process")
        roles = self.roles[silent_id]
        try:
            entry = wait_for(lambda: offline_after_online(stack.remote_states(roles.system, "asset")),
                             "the silent system OFFLINE", timeout=OFFLINE_TIMEOUT_S + 60)
        except AssertionError as error:
            raise AssertionError(f"{error}; history: {stack.remote_states(roles.system, 'asset')}") from None
        went = parse_iso(entry["at"])
        # Read now: no record of the silent system can come any more.
        last_heard = parse_iso(stack.device(silent_id)["last_heard_at"])
        self.assertGreaterEqual(went, int(last_heard + OFFLINE_TIMEOUT_S), f"OFFLINE too early: {entry}")
        self.assertLessEqual(went, last_heard + OFFLINE_TIMEOUT_S + SWEEP_S + SLACK_S, f"OFFLINE late: {entry}")
        match = OFFLINE_RE.search(entry["reason"])
        self.assertIsNotNone(match, entry)
        self.assertGreaterEqual(int(match.group(1)), OFFLINE_TIMEOUT_S, entry)

        # A few more sweeps and registrar polls of the first process alone.
        listed = len(self.recorder.listing_pages(t0))
        sweeps_from = time.monotonic()
        wait_for(lambda: time.monotonic() - sweeps_from >= 4 * SWEEP_S
                 and len(self.recorder.listing_pages(t0)) >= listed + 3, "more sweeps and listings", timeout=60)
        self.assertTrue(first.running(), first.log()[-3000:])
        self.assert_no_repeated_state()
        histories = self.history_by_target()
        for system_id, r in self.roles.items():
            want = ["ONLINE", "OFFLINE"] if system_id == silent_id else ["ONLINE"]
            for name, key in self.targets_of(r).items():
                states = [h["state"] for h in self.stripped(histories.get(key, []))]
                self.assertEqual(states, want, f"system {system_id} {name}: {histories.get(key)}")

        # ---- every record either process accepted from the fleet is in Concerto once ----
        self.assertEqual(fleet_a.stop(), 0, fleet_a.log()[-2000:])
        self.assertEqual(fleet_c.stop(), 0, fleet_c.log()[-2000:])
        delivered = self.fleet_delivered(fleet_a) + delivered_b + self.fleet_delivered(fleet_c)
        fleet_times = lambda: self.live_times(day_ago)  # noqa: E731
        try:
            wait_for(lambda: sum(len(t) for t in fleet_times().values()) >= delivered,
                     f"{delivered} fleet records in Concerto", timeout=90, interval=1.0)
        except AssertionError as error:
            counts = {k: len(v) for k, v in fleet_times().items()}
            raise AssertionError(f"{error}; records per system: {counts}") from None
        times = fleet_times()
        self.assertEqual(sum(len(t) for t in times.values()), delivered)
        stored, series = set(), {}
        for p in stack.telemetry():
            key = (p["assetId"], p["metric"], p["timestamp"])
            self.assertNotIn(key, stored, f"point stored twice: {key}")
            stored.add(key)
            if parse_iso(p["timestamp"]) > day_ago + 7200:
                series.setdefault((p["assetId"], p["metric"]), set()).add(p["timestamp"])
        for system_id, r in self.roles.items():
            for asset, name in sorted(series_of(r)):
                self.assertEqual(series.get((asset, name), set()), times[system_id],
                                 f"system {system_id}: series {asset} {name}")
        stats = stack.stats()
        self.assertEqual(stats["duplicates"], 0, f"Concerto received points twice: {stats}")
        self.assertEqual(stats["rejectedPoints"], 0, stats)
        print(f"{delivered} fleet records, {len(stored)} points, run time {time.monotonic() - t0:.0f} s")

    def live_times(self, day_ago):
        """{systemId: {timestamps of the fleet's live records}} from each SYSTEM asset's
        INVERTER_STATE series (every record yields one; the known records are a day old)."""
        out = {i: set() for i in self.roles}
        by_asset = {r.system: i for i, r in self.roles.items()}
        for p in self.stack.telemetry(metric_name="INVERTER_STATE"):
            if p["assetId"] in by_asset and parse_iso(p["timestamp"]) > day_ago + 7200:
                out[by_asset[p["assetId"]]].add(p["timestamp"])
        return out


if __name__ == "__main__":
    unittest.main()
