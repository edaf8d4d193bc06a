"""Deregistration end to end (SPEC section 3, registrar): a system whose SYSTEM asset left Concerto
leaves the device table (and is no longer polled), but only after a complete asset list: a sweep
with a failed page removes nothing, not the deleted system and not the systems on the pages it
never read."""

import unittest

from e2e_checks import wait_all_commissioned, wait_sweeps
from harness import BACKEND, Stack, live_scenario, metric, wait_for


def device_ids(stack):
    return {d["remote_id"] for d in stack.devices()}


def list_assets_requests(stack, outcome):
    return metric(stack.metrics(), "pwrcell_concerto_requests_total", operation="ListAssets", outcome=outcome)


class RemovalTest(unittest.TestCase):
    def test_system_deleted_in_concerto_leaves_the_device_table(self):
        stack = Stack(self, scenario=live_scenario(systems=3, seed=21), auto_commissioning=True).start()
        systems = stack.fleet_systems()
        ids = stack.enroll_fleet()
        wait_all_commissioned(stack, systems)
        gone, *kept = ids
        system_asset = next(a for a in stack.assets("SYSTEM") if a["remoteId"] == gone)
        stack.start_fleet()
        wait_for(lambda: all(stack.device(i)["last_heard_at"] for i in ids), "telemetry from every system")
        unmatched = metric(stack.metrics(), "pwrcell_telemetry_records_total", outcome="unmatched")

        stack.delete_asset(system_asset["id"])
        wait_for(lambda: device_ids(stack) == set(kept), "the deleted system out of the device table")
        self.assertIsNone(stack.device(gone))
        self.assertEqual(metric(stack.metrics(settle=True), "pwrcell_devices_deregistered_total"), 1)
        for remote_id in kept:
            self.assertEqual(stack.device(remote_id)["commissioning"]["state"], "DONE")

        # It stays out: later sweeps do not bring it back, and CES is no longer asked about it
        # (counted from one sweep after the removal, when no request can still be in flight).
        wait_sweeps(stack, 1)
        polls_at_removal = len(stack.ces_requests())
        wait_sweeps(stack, 3)
        wait_for(lambda: sum(1 for r in stack.ces_requests()[polls_at_removal:] if r["path"].endswith("/status"))
                 >= 2, "two more CES status polls")
        self.assertEqual(device_ids(stack), set(kept))
        later = stack.ces_requests()[polls_at_removal:]
        self.assertFalse([r for r in later if gone in r["systemIds"]], "no CES call for a deregistered system")
        self.assertTrue(all(set(kept) <= set(r["systemIds"]) for r in later if r["path"].endswith("/status")))
        # Its telemetry (it still streams) no longer matches any record: dropped, not re-registered.
        wait_for(lambda: metric(stack.metrics(), "pwrcell_telemetry_records_total", outcome="unmatched")
                 >= unmatched + 3, "the removed system's records dropped as unmatched")
        self.assertEqual(device_ids(stack), set(kept))
        self.assertEqual(metric(stack.metrics(settle=True), "pwrcell_devices_deregistered_total"), 1)

    def test_failed_page_removes_nothing(self):
        # 6 SYSTEM assets at 2 per page: a complete list takes 3 full pages (and an empty 4th).
        stack = Stack(self, scenario=live_scenario(systems=6, seed=22), auto_commissioning=False,
                      config={"concerto.page_size": 2, "concerto.max_retries": 1}).start()
        ids = set(stack.enroll_fleet())
        wait_for(lambda: device_ids(stack) == ids, "6 systems registered")
        assets = sorted(stack.assets("SYSTEM"), key=lambda a: int(a["id"]))
        deleted = assets[-1]  # on the last page

        def failed_deliveries():
            if BACKEND == "lambda":  # the gateway's batch items answered for redelivery (docs/LAMBDA.md)
                return metric(stack.metrics(), "pwrcell_lambda_batch_items_total", handler="concerto_gateway",
                              outcome="retry")
            return metric(stack.metrics(), "pwrcell_queue_messages_total", pool="concerto", outcome="retry")

        # Make listing fail; after a failed delivery the listing message waits 5 s in the queue
        # before it is tried again, and no other listing starts meanwhile.
        retries = failed_deliveries()
        stack.concerto_fault(kind="5xx", operation="ListAssets")
        wait_for(lambda: failed_deliveries() > retries, "a failed listing")
        # In that quiet time: the next request (page 1 of the next attempt) is held 3 s; delete a
        # system on the last page; once page 1 is held, every later ListAssets request fails, so
        # that attempt reads page 1 and fails on page 2 (also on the client's retry).
        stack.concerto_fault(kind="clear")
        stack.concerto_fault(kind="slow", operation="ListAssets", delay_s=3, count=1)
        stack.delete_asset(deleted["id"])
        wait_for(lambda: not stack.concerto_get("/admin/faults")["faults"], "page 1 of the next attempt held")
        ok_before, retries = list_assets_requests(stack, "ok"), failed_deliveries()
        stack.concerto_fault(kind="5xx", operation="ListAssets", status=502)

        wait_for(lambda: failed_deliveries() > retries, "the attempt failing on page 2", 30)
        self.assertEqual(list_assets_requests(stack, "ok") - ok_before, 1, "the failed attempt read page 1 only")
        self.assertEqual(device_ids(stack), ids, "a failed page removes nothing")
        self.assertEqual(metric(stack.metrics(), "pwrcell_devices_deregistered_total"), 0)

        # Concerto recovers: the next complete list removes the deleted system, and only it.
        stack.concerto_fault(kind="clear")
        wait_for(lambda: deleted["remoteId"] not in device_ids(stack), "the deleted system removed", 60)
        self.assertEqual(device_ids(stack), ids - {deleted["remoteId"]})
        self.assertEqual(metric(stack.metrics(settle=True), "pwrcell_devices_deregistered_total"), 1)
        self.assertGreaterEqual(metric(stack.metrics(), "pwrcell_registrar_sweeps_total", complete="true"), 1)


if __name__ == "__main__":
    unittest.main()
