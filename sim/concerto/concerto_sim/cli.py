"""concerto-sim: the command line. Exit codes: 0 after SIGTERM/SIGINT (state saved), 1 when the
server cannot start (port taken, unreadable state file, broken schema), 2 for bad arguments."""

import argparse
import os
import signal
import sys
import time

from . import __version__
from .persistence import StateFile, StateFileError
from .schema import SCHEMA_ENV, default_schema_path
from .server import ConcertoSim, SimConfig, SimServer

_DEFAULTS = SimConfig()


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number (0..65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0..65535")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}' must be a number of seconds > 0")
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
        prog="concerto-sim",
        description="A stand-in for the Concerto DERMS GraphQL API (contracts/concerto.graphql and "
        "concerto-api.md) with an admin API under /admin/ for tests. Prints "
        "'concerto-sim listening on http://HOST:PORT' once it accepts connections.",
        epilog="The admin API is documented in sim/concerto/README.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=_port, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--email", type=_non_empty, default=_DEFAULTS.email,
                        help="the accepted authenticate email (default: %(default)s)")
    parser.add_argument("--password", type=_non_empty, default=_DEFAULTS.password,
                        help="the accepted authenticate password (default: %(default)s)")
    parser.add_argument("--token-ttl", type=_positive_seconds, default=_DEFAULTS.token_ttl_s, metavar="S",
                        help="access token lifetime in seconds (default: %(default)g)")
    parser.add_argument("--rate-limit", type=_rate, default=_DEFAULTS.rate_limit, metavar="N",
                        help="requests per second per client token before HTTP 429; 0 = no limit "
                        "(default: %(default)s)")
    parser.add_argument("--state", metavar="FILE",
                        help="keep the state in this JSON file: loaded at start, saved after changes "
                        "(at most every 0.5 s) and on exit (default: memory only)")
    parser.add_argument("--adapter-name", type=_non_empty, default=_DEFAULTS.adapter_name, metavar="NAME",
                        help="adapterName used by POST /admin/systems when the body has none "
                        "(default: %(default)s)")
    parser.add_argument("--schema", metavar="FILE",
                        help=f"the GraphQL schema (default: ${SCHEMA_ENV}, else {default_schema_path()})")
    parser.add_argument("--issued-tokens", metavar="FILE",
                        help="append every access token issued to FILE, one a line (for tests that check "
                        "that no log shows a token; default: none)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request to stderr")
    parser.add_argument("--version", action="version", version=f"concerto-sim {__version__}")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.state is not None:
        directory = os.path.dirname(os.path.abspath(args.state))
        if not os.path.isdir(directory):
            parser.error(f"--state: directory {directory} does not exist")
        if os.path.isdir(args.state):
            parser.error(f"--state: {args.state} is a directory")
    schema = args.schema or default_schema_path()
    if not os.path.isfile(schema):
        parser.error(f"schema file {schema} not found (set --schema or ${SCHEMA_ENV})")
    args.schema = schema
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    config = SimConfig(
        email=args.email,
        password=args.password,
        token_ttl_s=args.token_ttl,
        rate_limit=args.rate_limit,
        adapter_name=args.adapter_name,
        schema_path=args.schema,
        issued_tokens_path=args.issued_tokens,
    )
    try:
        sim = ConcertoSim(config)
    except Exception as error:  # a schema that does not build
        print(f"concerto-sim: cannot load schema {args.schema}: {error}", file=sys.stderr)
        return 1

    state = None
    if args.state:
        state = StateFile(args.state, sim.store)
        try:
            loaded = state.load()
        except StateFileError as error:
            print(f"concerto-sim: {error}", file=sys.stderr)
            return 1
        counts = sim.store.counts()
        print(
            f"concerto-sim: state file {state.path} "
            + (f"loaded ({counts['sites']} sites, {counts['assets']} assets, {counts['pointsStored']} points)"
               if loaded else "not found; starting empty"),
            file=sys.stderr,
            flush=True,
        )

    try:
        server = SimServer(sim, args.host, args.port, log_requests=args.verbose)
    except (OSError, OverflowError) as error:
        print(f"concerto-sim: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1

    # The handler only flips a flag: taking a lock inside a signal handler could deadlock with
    # the interrupted main thread.
    stop_requested = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stop_requested.append(signum))
    if state is not None:
        state.start()
    server.start()
    print(f"concerto-sim listening on {server.url}", flush=True)
    while not stop_requested:
        time.sleep(0.1)
    server.stop()
    if state is not None:
        state.stop()
        print(f"concerto-sim: state saved to {state.path}", file=sys.stderr, flush=True)
    return 0
