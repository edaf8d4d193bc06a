"""The fleet comes from `fleet-sim --scenario FILE --print-fleet`: one fleet model (src/fleet/)
decides what each system is, so CES metadata and the telemetry fleet-sim streams always agree."""

import json
import os
import shutil
import subprocess


class FleetError(Exception):
    pass


def default_fleet_sim() -> str:
    """PWRCELL_FLEET_SIM (set by the build/bin/ces-sim launcher to the fleet-sim beside it), else PATH."""
    return os.environ.get("PWRCELL_FLEET_SIM") or shutil.which("fleet-sim") or "fleet-sim"


def load_fleet(fleet_sim: str, scenario: str) -> dict:
    if not os.path.isfile(fleet_sim) or not os.access(fleet_sim, os.X_OK):
        raise FleetError(f"fleet-sim not found at {fleet_sim} (build it, or pass --fleet-sim PATH)")
    try:
        result = subprocess.run(
            [fleet_sim, "--scenario", scenario, "--print-fleet"], capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FleetError(f"running {fleet_sim}: {error}") from None
    if result.returncode != 0:
        raise FleetError(result.stderr.strip() or f"{fleet_sim} exited with {result.returncode}")
    try:
        fleet = json.loads(result.stdout)
        for key in ("scenario", "start", "interval_s", "speed", "systems", "faults"):
            fleet[key]
    except (ValueError, KeyError, TypeError) as error:
        raise FleetError(f"{fleet_sim} --print-fleet printed something unexpected: {error}") from None
    return fleet
