"""ces-sim: the command line. Exit codes: 0 after SIGTERM/SIGINT, 1 when the server cannot start
(port taken), 2 for bad arguments or a fleet that cannot be loaded (bad scenario, no fleet-sim)."""

import argparse
import signal
import sys
import time

from . import __version__
from .clock import SimClock, parse_iso
from .fleet import FleetError, default_fleet_sim, load_fleet
from .server import SimServer, create_app
from .state import CesState


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number (0..65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0..65535")
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' must be simulated seconds per wall second > 0")
    return value


def _rate(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be >= 0 (0 turns the limit off)")
    return value


def _non_empty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ces-sim",
        description="A stand-in for the CES API (contracts/ces-api.md) serving the fleet of a fleet-sim "
        "scenario, with an admin API under /admin/ for tests. Prints 'ces-sim listening on "
        "http://HOST:PORT' once it accepts connections.",
        epilog="Scenario format: sim/scenarios/README.md. Admin API: sim/ces/README.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=8090, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--api-key", type=_non_empty, required=True, metavar="KEY",
                        help="the accepted x-api-key")
    parser.add_argument("--scenario", required=True, metavar="FILE", help="the fleet-sim scenario (TOML)")
    parser.add_argument("--speed", type=_speed, metavar="X",
                        help="simulated seconds per wall second (default: the scenario's)")
    parser.add_argument("--rate-limit", type=_rate, default=10, metavar="N",
                        help="requests per second before HTTP 429; 0 = no limit (default: %(default)s)")
    parser.add_argument("--fleet-sim", metavar="PATH", default=None,
                        help="the fleet-sim binary (default: $PWRCELL_FLEET_SIM, set by build/bin/ces-sim to the "
                        "fleet-sim beside it, else fleet-sim on PATH)")
    parser.add_argument("--version", action="version", version=f"ces-sim {__version__}")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        fleet = load_fleet(args.fleet_sim or default_fleet_sim(), args.scenario)
    except FleetError as error:
        print(f"ces-sim: cannot load the fleet: {error}", file=sys.stderr)
        return 2
    speed = args.speed or float(fleet["speed"])
    clock = SimClock(parse_iso(fleet["start"]), speed)
    state = CesState(fleet, clock, args.rate_limit)
    try:
        server = SimServer(create_app(state, args.api_key), args.host, args.port)
    except (OSError, OverflowError) as error:
        print(f"ces-sim: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1

    # The handler only flips a flag: the main thread notices and shuts the server down.
    stop_requested = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stop_requested.append(signum))
    server.start()
    print(
        f"ces-sim: scenario {fleet['scenario']}: {len(fleet['systems'])} systems, {len(fleet['faults'])} faults, "
        f"simulated clock from {fleet['start']} at {speed:g}x",
        file=sys.stderr,
        flush=True,
    )
    print(f"ces-sim listening on {server.url}", flush=True)
    while not stop_requested:
        time.sleep(0.1)
    server.stop()
    return 0
