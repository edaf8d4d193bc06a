"""The accelerated clock shared with fleet-sim: simulated time = start + wall elapsed * speed."""

import time
from datetime import datetime, timezone
from typing import Callable


def parse_iso(text: str) -> float:
    """'2026-06-21T04:00:00Z' -> seconds since the epoch."""
    return datetime.strptime(text.replace("+00:00", "Z"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def format_iso(epoch_s: float) -> str:
    """Seconds since the epoch -> '2026-06-21T04:00:00Z' (whole seconds: CES reports no fraction)."""
    return datetime.fromtimestamp(int(epoch_s), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SimClock:
    """Simulated seconds since the scenario start. `wall` is injectable so tests need no sleeps."""

    def __init__(self, start_epoch_s: float, speed: float, wall: Callable[[], float] = time.monotonic):
        self.start_epoch_s = start_epoch_s
        self.speed = speed
        self._wall = wall
        self._origin = wall()

    def elapsed_s(self) -> float:
        return (self._wall() - self._origin) * self.speed

    def now_epoch_s(self) -> float:
        return self.start_epoch_s + self.elapsed_s()

    def wall_seconds_for(self, simulated_s: float) -> float:
        return simulated_s / self.speed


class FakeWall:
    """A wall clock that moves only when told to (tests)."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
