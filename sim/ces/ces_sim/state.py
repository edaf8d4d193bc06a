"""What the simulated CES knows and how it misbehaves: the systems' metadata and status, the
scenario's CES-side faults on the accelerated clock, faults injected through the admin API, the
rate limit and the request log. Thread-safe: every public method takes the one lock."""

import copy
import math
import threading
import time
from collections import deque
from typing import Callable, Optional

from .clock import SimClock, format_iso, parse_iso

STATUS_NAMES = ("SUCCESS", "UNKNOWN", "NEVER_CONNECTED", "DISCONNECTED", "ERROR")
MAX_STATUS_BATCH = 100
MAX_LOGGED_REQUESTS = 100_000


class Refusal(Exception):
    """An API answer other than 200: HTTP status, error code, message, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def second_inverter(first: dict, contradicting: bool = True) -> dict:
    """The inverter a mixed_ratings or second_inverter fault adds: same model and rating, the next
    RCP number (fleet-sim streams its records under it), and an acPVPowerRating that contradicts
    the first one's (mixed_ratings: zero against non-zero) or equals it (second_inverter)."""
    rcpn = format((int(first["rcpn"], 16) + 1) % (1 << 48), "012X")
    rating = first.get("inverterSetting", {}).get("acPVPowerRating", 0.0)
    if contradicting:
        rating = 0.0 if rating else 3.8
    return {
        "rcpn": rcpn,
        "model": first.get("model", ""),
        "ratedPowerW": first.get("ratedPowerW", 0),
        "inverterSetting": {"acPVPowerRating": rating},
    }


class CesState:
    def __init__(self, fleet: dict, clock: SimClock, rate_limit: int, wall: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._wall = wall
        self._interval_s = float(fleet["interval_s"])
        self._systems = {s["systemId"]: copy.deepcopy(s) for s in fleet["systems"]}
        # Systems whose telemetry fleet-sim streams: their lastCommunicationAt follows the clock.
        self._streaming = set(self._systems)
        self._silent_since = {}  # systemId -> at_s of the silent fault in force
        self._fixed_last_communication = {}  # admin-added systems: systemId -> epoch s
        self._timeline = sorted(fleet["faults"], key=lambda f: f["at_s"])  # stable: file order on ties
        self._next_fault = 0
        self._windows = []  # (start_s, end_s, "5xx" | "429") from ces_5xx / ces_429
        self._injected = None  # {"kind": "5xx" | "429", "remaining": int or None (until cleared)}
        self._rate_limit = rate_limit
        self._recent = deque()  # wall times of the requests admitted in the last second
        self._requests = []
        self._dropped_requests = 0

    # -- the accelerated clock -------------------------------------------------------------------

    def _advance(self) -> None:
        elapsed = self._clock.elapsed_s()
        while self._next_fault < len(self._timeline) and self._timeline[self._next_fault]["at_s"] <= elapsed:
            self._apply(self._timeline[self._next_fault])
            self._next_fault += 1

    def _apply(self, fault: dict) -> None:
        kind, system_id = fault["kind"], fault.get("system_id")
        system = self._systems.get(system_id) if system_id else None
        if kind == "ces_status" and system is not None:
            system["statusName"] = fault["status"]
        elif kind in ("mixed_ratings", "second_inverter") and system is not None and system.get("inverters"):
            if len(system["inverters"]) == 1:
                system["inverters"].append(second_inverter(system["inverters"][0], kind == "mixed_ratings"))
        elif kind == "silent":
            self._silent_since[system_id] = fault["at_s"]
        elif kind == "resume":
            self._silent_since.pop(system_id, None)
        elif kind in ("ces_5xx", "ces_429"):
            self._windows.append((fault["at_s"], fault["at_s"] + fault["duration_s"], kind[4:]))
        # inverter_error / inverter_ok only change telemetry: fleet-sim's business.

    def _last_communication(self, system_id: str) -> Optional[float]:
        if system_id in self._fixed_last_communication:
            return self._fixed_last_communication[system_id]
        if system_id not in self._streaming:
            return None
        # fleet-sim sends a record at start + k * interval; a silent fault suppresses the records
        # at and after its at_s.
        elapsed = self._clock.elapsed_s()
        last_k = math.floor(elapsed / self._interval_s)
        if system_id in self._silent_since:
            last_k = min(last_k, math.ceil(self._silent_since[system_id] / self._interval_s) - 1)
        if last_k < 0:
            return None
        return self._clock.start_epoch_s + last_k * self._interval_s

    # -- the API ---------------------------------------------------------------------------------

    def check_faults(self) -> None:
        """Raises the Refusal of an injected fault or a scenario fault window, if one applies."""
        with self._lock:
            self._advance()
            if self._injected is not None:
                kind = self._injected["kind"]
                if self._injected["remaining"] is not None:
                    self._injected["remaining"] -= 1
                    if self._injected["remaining"] <= 0:
                        self._injected = None
                raise self._fault_refusal(kind, retry_after_s=1)
            elapsed = self._clock.elapsed_s()
            for start, end, kind in self._windows:
                if start <= elapsed < end:
                    retry_after = max(1, math.ceil(self._clock.wall_seconds_for(end - elapsed)))
                    raise self._fault_refusal(kind, retry_after_s=retry_after)

    @staticmethod
    def _fault_refusal(kind: str, retry_after_s: int) -> Refusal:
        if kind == "429":
            return Refusal(429, "RATE_LIMITED", "too many requests (injected fault)",
                           {"Retry-After": str(retry_after_s)})
        return Refusal(503, "UNAVAILABLE", "CES is temporarily unavailable (injected fault)")

    def check_rate_limit(self) -> None:
        """Admits the request or raises 429 with Retry-After (whole seconds until a slot frees)."""
        if self._rate_limit <= 0:
            return
        with self._lock:
            now = self._wall()
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= self._rate_limit:
                retry_after = max(1, math.ceil(self._recent[0] + 1.0 - now))
                raise Refusal(429, "RATE_LIMITED", f"more than {self._rate_limit} requests per second",
                              {"Retry-After": str(retry_after)})
            self._recent.append(now)

    def metadata(self, system_id: str, inverter_setting: bool) -> Optional[dict]:
        with self._lock:
            self._advance()
            system = self._systems.get(system_id)
            if system is None:
                return None
            body = copy.deepcopy(system)
        if not inverter_setting:
            for inverter in body.get("inverters", []):
                inverter.pop("inverterSetting", None)
        return body

    def statuses(self, system_ids: list) -> dict:
        with self._lock:
            self._advance()
            statuses, not_found = [], []
            for system_id in system_ids:
                system = self._systems.get(system_id)
                if system is None:
                    not_found.append(system_id)
                    continue
                entry = {"systemId": system_id, "statusName": system.get("statusName", "SUCCESS")}
                last = self._last_communication(system_id)
                if last is not None:  # absent when CES never heard the system
                    entry["lastCommunicationAt"] = format_iso(last)
                statuses.append(entry)
            return {"statuses": statuses, "notFound": not_found}

    def log_request(self, method: str, path: str, system_ids: list, status: int) -> None:
        with self._lock:
            if len(self._requests) >= MAX_LOGGED_REQUESTS:
                self._requests.pop(0)
                self._dropped_requests += 1
            self._requests.append({
                "method": method,
                "path": path,
                "systemIds": list(system_ids),
                "status": status,
                "at": format_iso(time.time()),
                "simTime": format_iso(self._clock.now_epoch_s()),
            })

    # -- the admin API ---------------------------------------------------------------------------

    def requests(self) -> dict:
        with self._lock:
            return {"requests": list(self._requests), "dropped": self._dropped_requests}

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._dropped_requests = 0

    def set_status(self, system_id: str, status_name: str) -> bool:
        with self._lock:
            self._advance()  # so that an older scenario fault cannot overwrite this later
            system = self._systems.get(system_id)
            if system is None:
                return False
            system["statusName"] = status_name
            return True

    def inject_fault(self, kind: str, count: Optional[int]) -> None:
        with self._lock:
            self._injected = None if kind == "clear" else {"kind": kind, "remaining": count}

    def add_system(self, metadata: dict) -> bool:
        """Adds or replaces a system; True when it is new. CES stays silent about its telemetry:
        lastCommunicationAt is the body's, or absent."""
        body = copy.deepcopy(metadata)
        last = body.pop("lastCommunicationAt", None)
        body.setdefault("statusName", "SUCCESS")
        for key in ("inverters", "batteries", "pvLinks"):
            body.setdefault(key, [])
        with self._lock:
            system_id = body["systemId"]
            created = system_id not in self._systems
            self._systems[system_id] = body
            self._streaming.discard(system_id)
            self._fixed_last_communication.pop(system_id, None)
            if last is not None:
                self._fixed_last_communication[system_id] = parse_iso(last)
            return created

    def delete_system(self, system_id: str) -> bool:
        with self._lock:
            if self._systems.pop(system_id, None) is None:
                return False
            self._streaming.discard(system_id)
            self._fixed_last_communication.pop(system_id, None)
            return True

    def snapshot(self) -> dict:
        with self._lock:
            self._advance()
            elapsed = self._clock.elapsed_s()
            return {
                "simTime": format_iso(self._clock.now_epoch_s()),
                "elapsedS": elapsed,
                "speed": self._clock.speed,
                "systems": len(self._systems),
                "injectedFault": copy.deepcopy(self._injected),
                "faultWindows": [{"fromS": s, "toS": e, "kind": k} for s, e, k in self._windows if e > elapsed],
                "scenarioFaultsApplied": self._next_fault,
                "scenarioFaultsPending": len(self._timeline) - self._next_fault,
            }
