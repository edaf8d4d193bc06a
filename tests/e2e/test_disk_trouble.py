"""Disk trouble under `serve` (issue 13 item 3): the store's file system fills up, or turns read-only,
while records are posted. Ingest must answer 503 with Retry-After and acknowledge only what it
stored; /readyz and the metrics say what is wrong; no queue message is dead-lettered for it; serve
recovers on its own once space returns; and every record ever acknowledged reaches Concerto.

The disk is a small tmpfs (disk full) or an ext4 file system in a loop file (read-only), mounted by
the test: it needs root (CI runs as root) and skips, saying why, where mounting is not permitted.
Figures (records acknowledged, refused, lost; time to recover) are printed for the report."""

import base64
import datetime
import errno
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from harness import BACKEND, FLEET_SIM, Process, Stack, http, metric, wait_for
from records import concerto_roles, decode_record, expected_points, read_file_sink

SYSTEMS = 2
RECORDS_PER_SYSTEM = 120


def scenario(start):
    """Records from the past at 1 s intervals, so that fleet-sim writes them all at once."""
    return f"""
[scenario]
name = "disk"
seed = 1313
systems = {SYSTEMS}
start = "{start}"
interval_s = 1
speed = 1
ac_coupled_fraction = 0.3
site_meter_fraction = 1.0
"""


def post(url, records, timeout=30.0):
    """POSTs records (serialized EnergyRecordSets) as one JSON body: (status, headers, body)."""
    body = json.dumps({"records": [{"data": base64.b64encode(r).decode()} for r in records]}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return error.code, dict(error.headers), parsed


def run(*argv, check=True):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=check)


def cpu_seconds(pid):
    """User + system CPU of a process so far (/proc/PID/stat), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DiskTroubleTest(unittest.TestCase):
    def setUp(self):
        if BACKEND != "embedded":
            self.skipTest("disk trouble concerns the embedded store (a SQLite file); AWS has no disk to fill")

    # ---- mounts ----

    def mount_tmpfs(self, size):
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root (CI runs as root)")
        point = tempfile.mkdtemp(prefix="pwrcell-disk-")
        result = run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", point, check=False)
        if result.returncode != 0:
            os.rmdir(point)
            self.skipTest(f"mount -t tmpfs is not permitted here: {result.stderr.strip()}")
        self.addCleanup(self.unmount, point)
        return point

    def mount_ext4_image(self, size_mb):
        """An ext4 file system in a loop file, errors=remount-ro: (mount point, image, loop device)."""
        if os.geteuid() != 0:
            self.skipTest("mounting a loop file needs root (CI runs as root)")
        work = tempfile.mkdtemp(prefix="pwrcell-disk-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", work], check=False))
        image, point = os.path.join(work, "store.img"), os.path.join(work, "mnt")
        os.mkdir(point)
        with open(image, "wb") as f:
            f.truncate(size_mb << 20)
        made = run("mkfs.ext4", "-q", "-F", image, check=False)
        if made.returncode != 0:
            self.skipTest(f"mkfs.ext4 failed: {made.stderr.strip()}")
        mounted = run("mount", "-o", "loop,errors=remount-ro", image, point, check=False)
        if mounted.returncode != 0:
            self.skipTest(f"mounting a loop file is not permitted here: {mounted.stderr.strip()}")
        self.addCleanup(self.unmount, point, False)
        device = run("findmnt", "-n", "-o", "SOURCE", point).stdout.strip()
        return point, image, device

    def unmount(self, point, remove=True):
        for _ in range(20):
            if subprocess.run(["umount", point], capture_output=True).returncode == 0:
                break
            if subprocess.run(["mountpoint", "-q", point]).returncode != 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", point], capture_output=True)
        if remove:
            os.rmdir(point)

    # ---- the stack and its records ----

    def start(self, store_dir):
        start = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)).replace(microsecond=0)
        stack = Stack(self, scenario=scenario(start.strftime("%Y-%m-%dT%H:%M:%SZ")), auto_commissioning=True,
                      config={"storage.path": os.path.join(store_dir, "adapter.db")}).start()
        ids = stack.enroll_fleet()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=60)
        recording = os.path.join(stack.dir, "recording.bin")
        fleet = Process("fleet-sim-file", [FLEET_SIM, "--scenario", stack.scenario_path, "--sink", "file:" + recording,
                                           "--speed", "100000", "--duration", str(RECORDS_PER_SYSTEM - 1)], stack.dir)
        self.assertEqual(fleet.stop_when_done(timeout=60), 0, fleet.log())
        records = read_file_sink(recording)
        self.assertEqual(len(records), SYSTEMS * RECORDS_PER_SYSTEM)
        # The points each record must become, from the contract (records.py), per record.
        roles = {}
        for remote_id in ids:
            device = stack.device(remote_id)
            for rcpn in device["inverter_rcpns"]:
                roles[rcpn] = concerto_roles(stack, remote_id)
        points = []
        for blob in records:
            decoded = decode_record(blob)
            want, _ = expected_points(decoded, roles[decoded["inverterId"][0]])
            points.append(set(want))
        return stack, records, points

    def missing_points(self, stack, points, acknowledged, timeout):
        """Waits for the points of every acknowledged record; the records whose points are missing."""
        expected = set().union(*(points[i] for i in acknowledged))
        try:
            wait_for(lambda: stack.telemetry_count() >= len(expected), f"{len(expected)} points in Concerto",
                     timeout=timeout, interval=1.0)
        except AssertionError:
            pass  # the comparison below says what is missing
        stored = {(p["assetId"], p["metric"], p["timestamp"]) for p in stack.telemetry()}
        return [i for i in acknowledged if not points[i] <= stored]

    def post_until_refused(self, stack, records, first, refusals_wanted=3, batch=2):
        """Posts records from `first` on, `batch` per request, until `refusals_wanted` requests in a
        row were refused: (acknowledged indexes, refused indexes, next index, one 503 answer)."""
        acknowledged, refused, answer = [], [], None
        index, in_a_row = first, 0
        while index < len(records) and in_a_row < refusals_wanted:
            chunk = list(range(index, min(index + batch, len(records))))
            status, headers, body = post(stack.ingest_url, [records[i] for i in chunk])
            if status == 200:
                self.assertEqual(body["accepted"], len(chunk), body)
                acknowledged += chunk
                in_a_row = 0
            else:
                self.assertEqual(status, 503, body)  # never 500: a full or read-only disk passes
                refused += chunk
                answer = (headers, body)
                in_a_row += 1
            index += len(chunk)
        return acknowledged, refused, index, answer

    def post_all(self, stack, records, indexes, batch=10):
        for begin in range(0, len(indexes), batch):
            chunk = indexes[begin:begin + batch]
            status, _, body = post(stack.ingest_url, [records[i] for i in chunk])
            self.assertEqual(status, 200, body)

    def check_refusal(self, stack, answer, reason_text, reason_label):
        self.assertIsNotNone(answer, "no request was refused")
        headers, body = answer
        self.assertIn("Retry-After", headers, headers)
        self.assertGreaterEqual(int(headers["Retry-After"]), 1)
        status, ready = http("GET", stack.admin_url + "/readyz")
        self.assertEqual(status, 503, ready)
        self.assertIn(reason_text, ready.get("store", ""), ready)
        samples = stack.metrics()
        self.assertGreater(metric(samples, "pwrcell_store_write_failures_total", reason=reason_label), 0)
        self.assertEqual(metric(samples, "pwrcell_store_writable"), 0)
        self.assertGreater(metric(samples, "pwrcell_ingest_requests_total", status="503"), 0)

    def check_nothing_dead(self, stack):
        samples = stack.metrics()
        self.assertEqual(metric(samples, "pwrcell_queue_messages_total", outcome="dead_letter"), 0)
        self.assertEqual(metric(samples, "pwrcell_dead_letters"), 0)

    # ---- the cases ----

    def test_disk_full_refuses_with_503_and_recovers_when_space_returns(self):
        point = self.mount_tmpfs("24m")
        stack, records, points = self.start(point)

        # Healthy: the first records are acknowledged.
        healthy = list(range(40))
        self.post_all(stack, records, healthy)

        # Fill the disk to the last block while serve runs.
        filler = os.path.join(point, "filler")
        with open(filler, "wb") as f:
            chunk = b"\0" * (64 << 10)
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError as error:
                self.assertEqual(error.errno, errno.ENOSPC)
        acknowledged, refused, index, answer = self.post_until_refused(stack, records, len(healthy))
        self.check_refusal(stack, answer, "disk full", "disk_full")

        # Full for a few seconds: the workers wait for the store without spinning.
        before = cpu_seconds(stack.adapter.proc.pid)
        time.sleep(3)
        cpu = cpu_seconds(stack.adapter.proc.pid) - before
        self.assertLess(cpu, 1.5, f"serve used {cpu:.2f} s of CPU in 3 s while the disk was full")
        status, _, _ = post(stack.ingest_url, [records[index]])
        self.assertEqual(status, 503)
        refused.append(index)
        index += 1

        # Space returns: serve recovers on its own (no request needed), then takes everything.
        os.unlink(filler)
        freed = time.monotonic()
        wait_for(lambda: http("GET", stack.admin_url + "/readyz")[0] == 200, "readyz 200 after space returned",
                 timeout=30, interval=0.1)
        recovered_s = time.monotonic() - freed
        rest = list(range(index, len(records)))
        self.post_all(stack, records, refused + rest)  # the sender sends what was refused again

        everything = healthy + acknowledged + refused + rest
        missing = self.missing_points(stack, points, everything, timeout=90)
        self.assertEqual(missing, [], f"{len(missing)} acknowledged records never reached Concerto")
        self.check_nothing_dead(stack)
        print(f"\ndisk full: {len(healthy) + len(acknowledged)} records acknowledged before the refusals, "
              f"{len(refused)} refused with 503 while full, readyz 200 {recovered_s:.2f} s after space returned, "
              f"{len(everything)} acknowledged in all, {len(missing)} lost; serve CPU {cpu:.2f} s in 3 s full")

    def test_read_only_store_refuses_with_503_and_loses_nothing(self):
        point, image, device = self.mount_ext4_image(32)
        trigger = f"/sys/fs/ext4/{os.path.basename(device)}/trigger_fs_error"
        if not os.path.exists(trigger):
            self.skipTest(f"{trigger} is missing: this kernel cannot make ext4 read-only under a writer")
        stack, records, points = self.start(point)
        healthy = list(range(40))
        self.post_all(stack, records, healthy)

        # An administrator's `mount -o remount,ro` is refused while serve holds the store open for
        # writing (EBUSY): nothing changes, records are still acknowledged.
        remount = run("mount", "-o", "remount,ro", point, check=False)
        self.assertNotEqual(remount.returncode, 0, "remount,ro succeeded under a writer")
        more = list(range(40, 50))
        self.post_all(stack, records, more)

        # What does make a file system read-only under a writer: the kernel, after an error
        # (errors=remount-ro). From then on every write fails with EROFS.
        with open(trigger, "w") as f:
            f.write("1")
        acknowledged, refused, index, answer = self.post_until_refused(stack, records, 50)
        self.check_refusal(stack, answer, "read-only", "read_only")
        time.sleep(2)  # the workers wait; nothing is dead-lettered
        self.check_nothing_dead(stack)

        # A file system the kernel turned read-only stays so until it is unmounted and checked, which
        # needs serve's files closed: stop serve, repair, mount, start again.
        self.assertEqual(stack.adapter.stop(), 0, stack.adapter.log()[-3000:])
        self.unmount(point, remove=False)
        repaired = run("e2fsck", "-f", "-y", image, check=False)
        self.assertIn(repaired.returncode, (0, 1), repaired.stdout + repaired.stderr)
        run("mount", "-o", "loop,errors=remount-ro", image, point)
        stack.start_adapter()
        rest = list(range(index, len(records)))
        self.post_all(stack, records, refused + rest)

        everything = healthy + more + acknowledged + refused + rest
        missing = self.missing_points(stack, points, everything, timeout=90)
        self.assertEqual(missing, [], f"{len(missing)} acknowledged records never reached Concerto")
        self.check_nothing_dead(stack)
        print(f"\nread-only: {len(healthy) + len(more) + len(acknowledged)} records acknowledged before the "
              f"refusals, {len(refused)} refused with 503, {len(everything)} acknowledged in all, "
              f"{len(missing)} lost")


if __name__ == "__main__":
    unittest.main()
