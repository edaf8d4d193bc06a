"""The startup grace with push ingest (SPEC section 4): a restart after downtime does not flap the
fleet OFFLINE. HTTP ingest cannot see what its senders still hold, so after a start no system is
moved to OFFLINE until `offline_timeout` has passed since that start; a system that stays silent
goes OFFLINE once the grace is over, with its reason, and not before.

The fleet runs on a live clock and keeps producing while `serve` is stopped for twice
offline_timeout. Its records reach the adapter through a relay (RecordRelay): fleet-sim writes them
to a file sink and the relay posts them in order to the current ingest endpoint, keeping and
re-sending whatever failed, every 0.2 s. fleet-sim's own HTTP sink also keeps going and re-sends
(it retries the failing batch, then posts the ticks it missed), but its back-off doubles up to
30 s: after a 16 s outage its next attempt may come ~16 s after the restart, past an 8 s grace,
and then the fleet would rightly go OFFLINE. The relay makes "streams again within the grace"
hold on any machine."""

import base64
import collections
import os
import re
import struct
import threading
import time
import unittest
from http.client import HTTPException

from harness import FLEET_SIM, Process, Stack, http, live_scenario, wait_for
from records import concerto_roles, parse_iso

OFFLINE_TIMEOUT_S = 8
SWEEP_S = 1
SLACK_S = 5  # on top of offline_timeout + one sweep: busy 2-core CI, whole-second history stamps
OFFLINE_RE = re.compile(r"no telemetry for (\d+) s")


def offline_after_online(history):
    """The first OFFLINE entry after an ONLINE one, or None."""
    online = False
    for entry in history:
        online = online or entry["state"] == "ONLINE"
        if online and entry["state"] == "OFFLINE":
            return entry
    return None


def _varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(data):
    """(field number, wire type, value) of one protobuf message (value: int, bytes or raw 8/4 bytes)."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def inverter_and_time(blob):
    """(inverterId, newest currentTimestamp) of a serialized EnergyRecordSet (contract field numbers:
    EnergyRecordSet.inverterId = 6, .energyRecord = 4; EnergyRecord.currentTimestamp = 1, a double)."""
    inverter, newest = None, None
    for number, wire, value in _fields(blob):
        if number == 6 and wire == 2:
            inverter = value.decode()
        elif number == 4 and wire == 2:
            for n, w, v in _fields(value):
                if n == 1 and w == 1:
                    ts = struct.unpack("<d", v)[0]
                    newest = ts if newest is None else max(newest, ts)
    return inverter, newest


class RecordRelay(threading.Thread):
    """Tails a fleet-sim file sink and posts its records, in order, to `url()` (JSON, the Kinesis
    shape, up to 100 a request). A failed post (refused connection, 5xx) is retried every 0.2 s with
    the same records and whatever came meanwhile; nothing is dropped, except the records of a system
    named by `silence()` from then on."""

    def __init__(self, path, url, system_of):
        super().__init__(daemon=True)
        self.path, self.url, self.system_of = path, url, system_of
        self.pending = collections.deque()
        self.silenced = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.offset = 0
        self.failures = 0
        self.last_failure = None
        self.delivered = collections.Counter()
        self.last_delivered = {}   # systemId -> newest record time delivered
        self.deliveries = []       # (time.time() after the answer, records in the request)
        self.error = None

    def silence(self, system_id):
        with self.lock:
            self.silenced.add(system_id)

    def backlog(self):
        """Records produced and not yet delivered: (count, newest record time)."""
        with self.lock:
            return len(self.pending), max((t for _, _, t in self.pending), default=None)

    def read_new(self):
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        i = 0
        while i + 4 <= len(data):
            n = int.from_bytes(data[i:i + 4], "big")
            if i + 4 + n > len(data):
                break
            blob = data[i + 4:i + 4 + n]
            inverter, ts = inverter_and_time(blob)
            with self.lock:
                self.pending.append((self.system_of[inverter], blob, ts))
            i += 4 + n
        self.offset += i

    def post_some(self):
        with self.lock:
            while self.pending and self.pending[0][0] in self.silenced:
                self.pending.popleft()
            batch = []
            for item in self.pending:
                if item[0] not in self.silenced:
                    batch.append(item)
                if len(batch) == 100:
                    break
        if not batch:
            return True
        body = {"records": [{"data": base64.b64encode(blob).decode(), "partitionKey": system}
                            for system, blob, _ in batch]}
        try:
            status, answer = http("POST", self.url(), body, timeout=10)
        except (OSError, HTTPException) as error:
            status, answer = 0, str(error)
        if status != 200 or answer.get("accepted") != len(batch) or answer.get("rejected"):
            if status in (0, 429, 503) or status >= 500:
                self.failures += 1
                self.last_failure = f"{status} {answer}"
                return False
            self.error = f"ingest answered {status} {answer}"
            raise AssertionError(self.error)
        with self.lock:
            sent = {id(item) for item in batch}
            self.pending = collections.deque(item for item in self.pending if id(item) not in sent)
            for system, _, ts in batch:
                self.delivered[system] += 1
                self.last_delivered[system] = max(self.last_delivered.get(system, ts), ts)
            self.deliveries.append((time.time(), len(batch)))
        return True

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.read_new()
                if self.post_some() and len(self.pending) < 100:
                    self.stop_event.wait(0.1)
                elif self.failures:
                    self.stop_event.wait(0.2)
            except Exception as error:  # noqa: BLE001 - reported by the test
                self.error = self.error or repr(error)
                return

    def stop(self):
        self.stop_event.set()
        self.join(10)


class StartupGraceTest(unittest.TestCase):
    def histories(self, roles):
        out = {"system": self.stack.remote_states(roles.system, "asset"),
               "inverter": self.stack.remote_states(roles.inverter, "asset"),
               "site": self.stack.remote_states(roles.site, "site")}
        if roles.site_meter:
            out["site_meter"] = self.stack.remote_states(roles.site_meter, "asset")
        return out

    @staticmethod
    def stripped(history):
        """Without a first OFFLINE sent before the system was ever heard (SPEC 4 rule 1)."""
        if history and history[0]["state"] == "OFFLINE" and history[0]["previous"] is None:
            return history[1:]
        return history

    def online(self, roles):
        return all([h["state"] for h in self.stripped(history)][:1] == ["ONLINE"]
                   for history in self.histories(roles).values())

    def test_restart_after_downtime_does_not_flap_the_fleet_offline(self):
        t0 = time.monotonic()
        self.stack = stack = Stack(self, scenario=live_scenario(systems=5, seed=5151),
                                   config={"liveness.offline_timeout_s": OFFLINE_TIMEOUT_S,
                                           "schedule.liveness_sweep_s": SWEEP_S}).start()
        systems = stack.fleet_systems()
        ids = stack.enroll_fleet()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=60)
        roles = {i: concerto_roles(stack, i) for i in ids}
        system_of = {s["inverters"][0]["rcpn"]: s["systemId"] for s in systems}

        sink = os.path.join(stack.dir, "fleet.bin")
        stack.fleet = Process("fleet-sim", [FLEET_SIM, "--scenario", stack.scenario_path, "--sink", "file:" + sink],
                              stack.dir)
        relay = RecordRelay(sink, lambda: stack.ingest_url, system_of)
        relay.start()
        self.addCleanup(relay.stop)
        for i in ids:
            wait_for(lambda: self.online(roles[i]), f"system {i} ONLINE", timeout=60)

        # serve stops; one system falls silent at the same moment; the rest keep producing.
        silent = ids[2]
        relay.silence(silent)
        stopped_at = time.time()
        self.assertEqual(stack.adapter.stop(), 0, stack.adapter.log()[-3000:])
        last_record = relay.last_delivered[silent]
        self.assertLessEqual(stopped_at - last_record, 3, "the silent system was heard until the stop")
        # Down for twice offline_timeout: until the fleet holds that much undelivered telemetry.
        wait_for(lambda: (b := relay.backlog())[1] is not None and b[1] >= stopped_at + 2 * OFFLINE_TIMEOUT_S,
                 f"{2 * OFFLINE_TIMEOUT_S} s of records held while serve is down", timeout=60)
        self.assertGreater(relay.failures, 0, "posts while serve is down should fail")
        self.assertTrue(stack.fleet.running(), stack.fleet.log()[-2000:])
        for i in ids:
            self.assertEqual(stack.remote_states(roles[i].system, "asset")[-1]["state"], "ONLINE")

        # serve starts again on the same store.
        restart_at = time.time()
        stack.start_adapter()
        ready_at = time.time()
        wait_for(lambda: relay.backlog()[0] == 0, "the relay's backlog delivered", timeout=30)
        first_delivery = min(t for t, _ in relay.deliveries if t >= restart_at)
        self.assertLess(first_delivery, restart_at + OFFLINE_TIMEOUT_S - 2,
                        "test set-up: the fleet did not stream again well within the grace")

        # The silent system goes OFFLINE once the grace (offline_timeout from the restart) is over.
        sroles = roles[silent]
        try:
            entry = wait_for(lambda: offline_after_online(stack.remote_states(sroles.system, "asset")),
                             "the silent system OFFLINE", timeout=OFFLINE_TIMEOUT_S + 60)
        except AssertionError as error:
            raise AssertionError(f"{error}; history: {self.histories(sroles)}; "
                                 f"adapter log:\n{stack.adapter.log()[-3000:]}") from None
        went = parse_iso(entry["at"])  # whole seconds, rounded down
        print(f"restart at +{restart_at - stopped_at:.1f} s after the stop (ready {ready_at - restart_at:.1f} s "
              f"later); silent system OFFLINE at restart +{went - restart_at:.1f} s: {entry}")
        self.assertGreaterEqual(went, int(restart_at + OFFLINE_TIMEOUT_S),
                                f"OFFLINE before the grace ended (restart {restart_at:.1f}): {entry}")
        self.assertLessEqual(went, ready_at + OFFLINE_TIMEOUT_S + SWEEP_S + SLACK_S,
                             f"OFFLINE late (restart {restart_at:.1f}): {entry}")
        match = OFFLINE_RE.search(entry["reason"])
        self.assertIsNotNone(match, entry)
        silent_for = int(match.group(1))
        self.assertGreaterEqual(silent_for, 3 * OFFLINE_TIMEOUT_S - SLACK_S, entry)  # 2 x down + the grace
        self.assertLessEqual(abs(silent_for - (went - last_record)), SLACK_S,
                             f"reason vs. its last record at {last_record}: {entry}")
        self.assertEqual(parse_iso(stack.device(silent)["last_heard_at"]), last_record)

        # A few sweeps after the grace: nobody else went OFFLINE, nothing was sent twice.
        grace_end = restart_at + OFFLINE_TIMEOUT_S
        wait_for(lambda: time.time() >= grace_end + 4 * SWEEP_S + 2, "4 sweeps after the grace", timeout=60)
        self.assertIsNone(relay.error, relay.error)
        for i in ids:
            want = ["ONLINE", "OFFLINE"] if i == silent else ["ONLINE"]
            for target, history in self.histories(roles[i]).items():
                with self.subTest(system=i, target=target):
                    self.assertEqual([h["state"] for h in self.stripped(history)], want, history)
                    for entry in history:
                        self.assertNotEqual(entry["state"], entry["previous"], history)
            if i != silent:
                heard = parse_iso(stack.device(i)["last_heard_at"])
                self.assertGreater(heard, grace_end, f"system {i} stopped streaming")
        print(f"run time {time.monotonic() - t0:.0f} s; {sum(relay.delivered.values())} records relayed, "
              f"{relay.failures} failed posts while down")


if __name__ == "__main__":
    unittest.main()
