"""remote_state end to end (SPEC sections 3.8 and 4): a silent system goes OFFLINE within
offline_timeout + one liveness sweep, with a reason; an inverter error state or a CES status other
than SUCCESS gives ERROR; recovery gives ONLINE again; the SYSTEM, INVERTER and SITE_METER assets and
the site follow; and no state is sent twice in a row.

Everything is read back from concerto-sim's remote-state history (/admin/remote-states), which
records every update the adapter made, with its reason and time."""

import re
import unittest

from harness import Stack, http, live_scenario, metric, wait_for
from records import concerto_roles, parse_iso

# Timing bounds are checked with this allowance on top of the SPEC's offline_timeout + one sweep:
# the sweep thread, the Concerto queue and the request itself take time on a busy 2-core machine,
# and concerto-sim stamps history entries to the whole second.
SLACK_S = 3

OFFLINE_RE = re.compile(r"no telemetry for (\d+) s")


def fleet_start(stack):
    """The scenario's start (start = "now" is fixed by fleet-sim when it starts), from its log."""
    match = stack.fleet.wait_line(r"systems from (\S+Z)")
    return parse_iso(match.group(1))


class LivenessTest(unittest.TestCase):
    def setUp(self):
        self.stack = None

    def histories(self, roles):
        """{'system'|'inverter'|'site_meter'|'site': [history entries]} for one system."""
        out = {"system": self.stack.remote_states(roles.system, "asset"),
               "inverter": self.stack.remote_states(roles.inverter, "asset"),
               "site": self.stack.remote_states(roles.site, "site")}
        if roles.site_meter:
            out["site_meter"] = self.stack.remote_states(roles.site_meter, "asset")
        return out

    def stripped(self, history):
        """The history without a first OFFLINE sent before the system was ever heard (SPEC section
        4 rule 1: a registered system never heard is OFFLINE; whether the adapter sends that before
        the first record arrives depends only on timing)."""
        if len(history) > 1 and history[0]["state"] == "OFFLINE" and history[0]["previous"] is None:
            return history[1:]
        return history

    def states(self, history):
        return [h["state"] for h in self.stripped(history)]

    def wait_states(self, roles, prefix, what, timeout=60):
        """Waits until the SYSTEM asset's and the site's histories (without a never-heard OFFLINE)
        begin with the states `prefix`; returns the system's entry for the last of them. Waiting for
        a history rather than for the current state sees a state however briefly it lasted."""
        prefix = list(prefix)

        def reached():
            system = self.stripped(self.stack.remote_states(roles.system, "asset"))
            site = self.states(self.stack.remote_states(roles.site, "site"))
            if [h["state"] for h in system[:len(prefix)]] == prefix and site[:len(prefix)] == prefix:
                return system[len(prefix) - 1]
            return None

        try:
            return wait_for(reached, f"{what}: {' -> '.join(prefix)} in Concerto", timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}; histories: {self.histories(roles)}") from None

    def assert_no_repeats(self, roles, name):
        for target, history in self.histories(roles).items():
            for before, entry in zip([None] + history, history):
                self.assertNotEqual(entry["state"], entry["previous"], f"{name} {target}: state re-sent: {entry}")
                if before is not None:
                    self.assertNotEqual(entry["state"], before["state"], f"{name} {target}: repeated: {history}")
                self.assertTrue(entry["reason"], f"{name} {target}: no reason: {entry}")

    def assert_sequence(self, roles, name, expected):
        for target, history in self.histories(roles).items():
            self.assertEqual(self.states(history), expected, f"{name} {target}: {history}")
        # The component assets carry the system's reasons; the site its own aggregate reason.
        histories = self.histories(roles)
        system = [h["reason"] for h in self.stripped(histories["system"])]
        for target in ("inverter", "site_meter"):
            if target in histories:
                self.assertEqual([h["reason"] for h in self.stripped(histories[target])], system, f"{name} {target}")

    def assert_offline_in_time(self, roles, last_record, offline_timeout, sweep, prefix):
        """The system's OFFLINE entry (the last of `prefix`) came offline_timeout .. offline_timeout
        + sweep after its last record (stamped `last_record`), and its reason says how long the
        system had been silent."""
        entry = self.wait_states(roles, prefix, "the silent system", timeout=offline_timeout + sweep + 60)
        self.assertEqual(entry["state"], "OFFLINE")
        went = parse_iso(entry["at"])
        self.assertGreaterEqual(went - last_record, offline_timeout, f"OFFLINE too early: {entry}")
        self.assertLessEqual(went - last_record, offline_timeout + sweep + SLACK_S, f"OFFLINE late: {entry}")
        match = OFFLINE_RE.search(entry["reason"])
        self.assertIsNotNone(match, entry)
        self.assertGreaterEqual(int(match.group(1)), offline_timeout, entry)
        self.assertLessEqual(int(match.group(1)), offline_timeout + sweep + SLACK_S, entry)
        return entry

    def test_silent_error_ces_status_and_recovery(self):
        # Fleet clock (fleet-sim's start = 0): system 0 silent from 10 s to 26 s, system 1 in an
        # inverter error from 10 s to 18 s. CES clock (ces-sim's start, a few s before fleet-sim's):
        # system 3 has CES status ERROR from 25 s to 35 s. System 2's CES status is set through
        # ces-sim's admin API; system 4 is left alone.
        faults = """
[[fault]]
at_s = 10
system = 0
kind = "silent"
[[fault]]
at_s = 26
system = 0
kind = "resume"
[[fault]]
at_s = 10
system = 1
kind = "inverter_error"
[[fault]]
at_s = 18
system = 1
kind = "inverter_ok"
[[fault]]
at_s = 25
system = 3
kind = "ces_status"
status = "ERROR"
[[fault]]
at_s = 35
system = 3
kind = "ces_status"
status = "SUCCESS"
"""
        offline_timeout, sweep = 6, 1
        self.stack = stack = Stack(self, scenario=live_scenario(systems=5, seed=777, faults=faults),
                                   config={"liveness.offline_timeout_s": offline_timeout,
                                           "schedule.liveness_sweep_s": sweep}).start()
        ids = stack.enroll_fleet()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=60)
        roles = [concerto_roles(stack, i) for i in ids]
        self.assertTrue(any(r.site_meter for r in roles))
        stack.start_fleet()
        start = fleet_start(stack)
        status, ces_state = http("GET", f"{stack.ces_url}/admin/state")
        self.assertEqual(status, 200, ces_state)
        for i, r in enumerate(roles):
            self.wait_states(r, ["ONLINE"], f"system {i}")
        # System 3's CES ERROR (CES clock 25 s) must come after it was heard, or rule 1 (OFFLINE)
        # would hide it: the CES clock was well short of 25 s when the fleet started.
        self.assertLess(ces_state["elapsedS"], 18, f"the stack took too long to start: {ces_state}")

        # System 2: CES says DISCONNECTED -> ERROR; SUCCESS again -> ONLINE.
        status, body = http("POST", f"{stack.ces_url}/admin/systems/{ids[2]}/status", {"statusName": "DISCONNECTED"})
        self.assertEqual(status, 200, body)
        entry = self.wait_states(roles[2], ["ONLINE", "ERROR"], "system 2 (CES DISCONNECTED)")
        self.assertTrue(re.search(r"CES.*DISCONNECTED", entry["reason"]), entry)
        status, body = http("POST", f"{stack.ces_url}/admin/systems/{ids[2]}/status", {"statusName": "SUCCESS"})
        self.assertEqual(status, 200, body)
        self.wait_states(roles[2], ["ONLINE", "ERROR", "ONLINE"], "system 2 (CES SUCCESS)")

        # System 1: inverter error state 0x7010 (28688) from fleet time 10 s -> ERROR, then
        # GRID_CONNECTED from 18 s -> ONLINE.
        entry = self.wait_states(roles[1], ["ONLINE", "ERROR"], "system 1 (inverter_error)")
        self.assertTrue(re.search(r"7010|28688", entry["reason"]), entry)
        self.assertGreaterEqual(parse_iso(entry["at"]), start + 10)
        entry = self.wait_states(roles[1], ["ONLINE", "ERROR", "ONLINE"], "system 1 (inverter_ok)")
        self.assertGreaterEqual(parse_iso(entry["at"]), start + 18)

        # System 0: silent from fleet time 10 s (its last record is stamped 9 s) -> OFFLINE in
        # time, then ONLINE once it resumes at 26 s.
        self.assert_offline_in_time(roles[0], start + 9, offline_timeout, sweep, ["ONLINE", "OFFLINE"])
        entry = self.wait_states(roles[0], ["ONLINE", "OFFLINE", "ONLINE"], "system 0 (resume)")
        self.assertGreaterEqual(parse_iso(entry["at"]), start + 26)

        # System 3: CES status ERROR, then SUCCESS, by the scenario.
        entry = self.wait_states(roles[3], ["ONLINE", "ERROR"], "system 3 (ces_status ERROR)")
        self.assertTrue(re.search(r"CES.*ERROR", entry["reason"]), entry)
        self.wait_states(roles[3], ["ONLINE", "ERROR", "ONLINE"], "system 3 (ces_status SUCCESS)")

        # Quiet period: two more full CES polls and their evaluations (and the liveness sweeps
        # meanwhile) must not re-send anything.
        polled = metric(stack.metrics(), "pwrcell_ces_statuses_total")
        wait_for(lambda: metric(stack.metrics(), "pwrcell_ces_statuses_total") >= polled + 2 * len(ids) + 1,
                 "two more CES status polls")
        expected = {0: ["ONLINE", "OFFLINE", "ONLINE"], 1: ["ONLINE", "ERROR", "ONLINE"],
                    2: ["ONLINE", "ERROR", "ONLINE"], 3: ["ONLINE", "ERROR", "ONLINE"], 4: ["ONLINE"]}
        for i, r in enumerate(roles):
            self.assert_no_repeats(r, f"system {i}")
            self.assert_sequence(r, f"system {i}", expected[i])
            self.assertEqual(stack.device(ids[i])["remote_state"], "ONLINE")
        # Every change the adapter decided reached Concerto once.
        decided = metric(stack.metrics(), "pwrcell_remote_state_changes_total")
        sent = sum(len(stack.remote_states(r.system, "asset")) for r in roles)
        self.assertEqual(decided, sent)

    def test_offline_is_decided_by_the_liveness_sweep_alone(self):
        # A longer offline_timeout and sweep than the harness defaults, and no CES poll after the
        # first one: OFFLINE can only come from the liveness sweep, at the configured timeout.
        offline_timeout, sweep = 9, 2
        faults = """
[[fault]]
at_s = 4
system = 1
kind = "silent"
"""
        self.stack = stack = Stack(self, scenario=live_scenario(systems=2, seed=31, faults=faults),
                                   config={"liveness.offline_timeout_s": offline_timeout,
                                           "schedule.liveness_sweep_s": sweep,
                                           "schedule.ces_state_poll_s": 3600}).start()
        ids = stack.enroll_fleet()
        wait_for(lambda: all((d := stack.device(i)) and d["commissioning"]["state"] == "DONE" for i in ids),
                 "commissioning DONE", timeout=60)
        roles = [concerto_roles(stack, i) for i in ids]
        stack.start_fleet()
        start = fleet_start(stack)
        for i, r in enumerate(roles):
            self.wait_states(r, ["ONLINE"], f"system {i}")
        # Its last record is stamped 3 s (the fault applies from the record of 4 s on).
        self.assert_offline_in_time(roles[1], start + 3, offline_timeout, sweep, ["ONLINE", "OFFLINE"])
        # The other system stays ONLINE: a few more sweeps pass without any update for it.
        wait_for(lambda: (d := stack.device(ids[0])) and parse_iso(d["last_heard_at"]) >= start + 4 + offline_timeout
                 + 2 * sweep, "more records of system 0", timeout=60)
        self.assert_no_repeats(roles[0], "system 0")
        self.assert_sequence(roles[0], "system 0", ["ONLINE"])
        self.assert_no_repeats(roles[1], "system 1")
        self.assert_sequence(roles[1], "system 1", ["ONLINE", "OFFLINE"])


if __name__ == "__main__":
    unittest.main()
