"""The HTTP face of the simulator: POST /graphql (the contract) and /admin/* (for tests, scripts
and the demo; loopback clients only), plus an embeddable threaded server.

The order in which a GraphQL request is judged (documented in README.md):
  1. body is JSON with a string `query`                       else HTTP 400 BAD_USER_INPUT
  2. injected faults matching the request                     slow: delay; 5xx / 429: answer it
  3. rate limit per client (bearer token, else address)       else HTTP 429, Retry-After: 1
  4. the document parses and validates against the schema     else HTTP 200 GRAPHQL_VALIDATION_FAILED
  5. a valid token, unless the operation only authenticates   else HTTP 401 UNAUTHENTICATED
  6. execution over the store, under its lock                 HTTP 200 {data, errors?}
"""

import ipaddress
import json
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

from flask import Flask, Response, request
from graphql import (
    FieldNode,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from werkzeug.serving import make_server

from . import errors
from .errors import error_body
from .gate import FaultInjector, RateLimiter, Stats, TokenStore
from .schema import RequestContext, error_code, load_schema
from .store import ASSET_TYPES, Store, parse_id

METRICS = (
    "REAL_POWER",
    "REACTIVE_POWER",
    "STATE_OF_CHARGE",
    "STATE_OF_HEALTH",
    "VOLTAGE",
    "ENERGY_IMPORTED",
    "ENERGY_EXPORTED",
    "SOURCE_MAX_POWER",
    "SINK_MAX_POWER",
    "INVERTER_STATE",
    "SYSTEM_MODE",
)
_PUBLIC_FIELDS = frozenset({"authenticate", "__typename"})
_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass
class SimConfig:
    email: str = "admin@example.com"
    password: str = "secret"
    token_ttl_s: float = 1800.0
    rate_limit: int = 25
    adapter_name: str = "pwrcell-adapter"
    schema_path: Optional[str] = None
    # A file every issued access token is appended to (one a line, written before the client
    # gets it), so that a test can look for the tokens in the logs of the programs it ran.
    issued_tokens_path: Optional[str] = None


def is_loopback(address: Optional[str]) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.0.0.1); False otherwise,
    including for anything that is not an IP address."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _json_response(status: int, body, headers: Optional[dict] = None) -> Response:
    # json.dumps keeps key order (GraphQL responses follow the selection order; Flask's jsonify
    # would sort them).
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _admin_error(status: int, message: str) -> Response:
    return _json_response(status, {"error": message})


def _bearer_token(header: Optional[str]) -> Optional[str]:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""  # present but not a bearer token: treated as a wrong token
    return token.strip()


class ConcertoSim:
    """The simulator's parts wired together; `app` is the WSGI application.

    `clock` (epoch seconds) drives token expiry and timestamps; `monotonic` drives the rate
    limiter. Tests may pass fakes for both.
    """

    def __init__(
        self,
        config: Optional[SimConfig] = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config = config or SimConfig()
        self.schema = load_schema(self.config.schema_path)
        self.store = Store(clock)
        self.tokens = TokenStore(self.config.token_ttl_s, clock, on_issue=self._record_token)
        self.limiter = RateLimiter(self.config.rate_limit, monotonic=monotonic)
        self.faults = FaultInjector()
        self.stats = Stats()
        self._sleep = sleep
        self.app = self._build_app()

    # ----- POST /graphql -------------------------------------------------------------------------

    def handle_graphql(self) -> Response:
        body = self._read_graphql_body()
        if isinstance(body, str):
            self.stats.count_request("<bad request>", ())
            return self._answer(400, error_body(errors.BAD_USER_INPUT, body))
        query, variables, operation_name = body

        document = None
        parse_error = None
        try:
            document = parse(query)
        except GraphQLError as error:
            parse_error = error
        operation = get_operation_ast(document, operation_name) if document is not None else None
        label = operation_name or (
            operation.name.value if operation is not None and operation.name else "<anonymous>"
        )
        if document is None:
            label = operation_name or "<invalid>"
        fields = (
            [sel.name.value for sel in operation.selection_set.selections if isinstance(sel, FieldNode)]
            if operation is not None
            else []
        )
        self.stats.count_request(label, fields)

        delay, fault = self.faults.take({label, *fields})
        if delay:
            self.stats.count_fault("slow")
            self._sleep(delay)
        if fault is not None:
            self.stats.count_fault(fault.kind)
            if fault.kind == "429":
                return self._answer(
                    429,
                    error_body(errors.RATE_LIMITED,
                               f"rate limited (injected fault); retry after {fault.retry_after_s} s", False),
                    {"Retry-After": str(fault.retry_after_s)},
                )
            return self._answer(
                fault.status,
                error_body(errors.INTERNAL_SERVER_ERROR, f"injected fault: HTTP {fault.status}", False),
            )

        authorization = request.headers.get("Authorization")
        token = _bearer_token(authorization)
        client = f"token:{authorization}" if authorization else f"addr:{request.remote_addr}"
        if not self.limiter.allow(client):
            return self._answer(
                429,
                error_body(
                    errors.RATE_LIMITED,
                    f"more than {self.limiter.limit} requests per second for this client; retry after 1 s",
                    False,
                ),
                {"Retry-After": "1"},
            )

        if parse_error is not None:
            return self._answer(200, self._validation_failure([parse_error]))
        validation_errors = validate(self.schema, document)
        if validation_errors:
            return self._answer(200, self._validation_failure(validation_errors))
        if operation is None:
            message = (
                f"unknown operation named '{operation_name}'"
                if operation_name
                else "the document has several operations; send operationName"
            )
            return self._answer(200, error_body(errors.BAD_USER_INPUT, message))

        if not self._is_public(operation):
            problem = self.tokens.problem(token)
            if problem is not None:
                return self._answer(
                    401,
                    error_body(errors.UNAUTHENTICATED, problem, False),
                    {"WWW-Authenticate": 'Bearer realm="concerto"'},
                )

        context = RequestContext(self.store, self.tokens, self.stats, self.config.email, self.config.password)
        with self.store.lock:
            result = execute(
                self.schema,
                document,
                variable_values=variables,
                operation_name=operation_name,
                context_value=context,
            )
        response: dict = {}
        if result.errors:
            response["errors"] = [self._format_error(error) for error in result.errors]
        response["data"] = result.data
        return self._answer(200, response)

    def _read_graphql_body(self):
        """(query, variables, operationName), or a message saying what is wrong."""
        if request.mimetype != "application/json":
            return f"Content-Type must be application/json, got '{request.content_type or ''}'"
        try:
            body = json.loads(request.get_data(cache=False) or b"null")
        except ValueError as error:
            return f"the body is not JSON: {error}"
        if not isinstance(body, dict):
            return "the body must be a JSON object {query, variables, operationName}"
        query = body.get("query")
        variables = body.get("variables")
        operation_name = body.get("operationName")
        if not isinstance(query, str) or not query.strip():
            return "'query' must be a non-empty string"
        if variables is not None and not isinstance(variables, dict):
            return "'variables' must be an object or null"
        if operation_name is not None and not isinstance(operation_name, str):
            return "'operationName' must be a string or null"
        return query, variables, operation_name or None

    @staticmethod
    def _is_public(operation) -> bool:
        """Only a mutation made of `authenticate` (and __typename) goes without a token."""
        if operation.operation != OperationType.MUTATION:
            return False
        selections = operation.selection_set.selections
        return all(isinstance(sel, FieldNode) and sel.name.value in _PUBLIC_FIELDS for sel in selections)

    @staticmethod
    def _validation_failure(validation_errors) -> dict:
        formatted = []
        for error in validation_errors:
            entry = dict(error.formatted)
            entry["extensions"] = {**(entry.get("extensions") or {}), "code": errors.GRAPHQL_VALIDATION_FAILED}
            formatted.append(entry)
        return {"errors": formatted, "data": None}

    @staticmethod
    def _format_error(error: GraphQLError) -> dict:
        entry = dict(error.formatted)
        if error_code(error) is None:
            # Errors without a path come from coercing variables (a PosInteger of 0, a malformed
            # DateTime): the client's fault. Anything else is a bug in the simulator.
            code = errors.BAD_USER_INPUT if error.path is None else errors.INTERNAL_SERVER_ERROR
            if code == errors.INTERNAL_SERVER_ERROR and error.original_error is not None:
                traceback.print_exception(error.original_error, file=sys.stderr)
            entry["extensions"] = {**(entry.get("extensions") or {}), "code": code}
        return entry

    def _answer(self, status: int, body: dict, headers: Optional[dict] = None) -> Response:
        codes = [entry.get("extensions", {}).get("code") for entry in body.get("errors", ())]
        self.stats.count_response(status, [code for code in codes if code])
        return _json_response(status, body, headers)

    # ----- /admin --------------------------------------------------------------------------------

    def _admin_json(self):
        try:
            body = json.loads(request.get_data(cache=False) or b"{}")
        except ValueError as error:
            raise _AdminError(400, f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise _AdminError(400, "the body must be a JSON object")
        return body

    def admin_enroll_system(self) -> Response:
        body = self._admin_json()
        remote_id = body.get("remoteId")
        if not isinstance(remote_id, str) or not remote_id:
            raise _AdminError(400, "remoteId (the CES systemId) must be a non-empty string")
        name = body.get("name", f"PWRcell system {remote_id}")
        adapter_name = body.get("adapterName", self.config.adapter_name)
        checks = (
            ("name", name, (str,), False),
            ("adapterName", adapter_name, (str,), True),
            ("simulated", body.get("simulated"), (bool,), True),
            ("ratedPower", body.get("ratedPower"), (int, float), True),
            ("energyCapacity", body.get("energyCapacity"), (int, float), True),
            ("acCoupled", body.get("acCoupled"), (bool,), True),
            ("siteId", body.get("siteId"), (str, int), True),
        )
        for field, value, types, nullable in checks:
            if value is None and nullable:
                continue
            if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                raise _AdminError(400, f"{field} must be {' or '.join(t.__name__ for t in types)}")
        unknown = set(body) - {"remoteId", "name", "adapterName", "simulated", "ratedPower", "energyCapacity",
                               "acCoupled", "siteId"}
        if unknown:
            raise _AdminError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        fields = {
            "remoteId": remote_id,
            "name": name,
            "assetType": "SYSTEM",
            "adapterName": adapter_name,
            "simulated": body.get("simulated") or False,
            "ratedPower": body.get("ratedPower"),
            "energyCapacity": body.get("energyCapacity"),
            "acCoupled": body.get("acCoupled"),
            "siteId": None if body.get("siteId") is None else str(body["siteId"]),
        }
        with self.store.lock:
            try:
                asset = self.store.create_asset(fields)
            except errors.ApiError as error:
                status = 409 if error.code == errors.CONFLICT else 404
                raise _AdminError(status, error.message) from None
            return _json_response(201, self.store.asset_view(asset))

    def admin_get_asset(self, asset_id: str) -> Response:
        with self.store.lock:
            asset = self.store.get_asset(asset_id)
            if asset is None:
                raise _AdminError(404, f"no asset with id '{asset_id}'")
            return _json_response(200, self.store.asset_view(asset))

    def admin_update_asset(self, asset_id: str) -> Response:
        body = self._admin_json()
        types = {"name": (str,), "simulated": (bool,), "ratedPower": (int, float), "energyCapacity": (int, float),
                 "acCoupled": (bool,)}
        unknown = set(body) - set(types)
        if unknown:
            raise _AdminError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        for field, value in body.items():
            nullable = field not in ("name", "simulated")
            if value is None and nullable:
                continue
            allowed = types[field]
            if not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool)):
                raise _AdminError(400, f"{field} must be {' or '.join(t.__name__ for t in allowed)}")
        with self.store.lock:
            asset = self.store.operator_update_asset(asset_id, body)
            if asset is None:
                raise _AdminError(404, f"no asset with id '{asset_id}'")
            return _json_response(200, self.store.asset_view(asset))

    def admin_delete_asset(self, asset_id: str) -> Response:
        with self.store.lock:
            asset = self.store.delete_asset(asset_id)
            if asset is None:
                raise _AdminError(404, f"no asset with id '{asset_id}'")
            return _json_response(200, {"deleted": self.store.asset_view(asset)})

    def admin_delete_site(self, site_id: str) -> Response:
        with self.store.lock:
            site = self.store.delete_site(site_id)
            if site is None:
                raise _AdminError(404, f"no site with id '{site_id}'")
            return _json_response(200, {"deleted": self.store.site_view(site)})

    def admin_list_assets(self) -> Response:
        asset_type = request.args.get("type")
        adapter = request.args.get("adapter")
        if asset_type is not None and asset_type not in ASSET_TYPES:
            raise _AdminError(400, f"type must be one of {', '.join(ASSET_TYPES)}")
        with self.store.lock:
            assets = [
                self.store.asset_view(asset)
                for asset in self.store.assets_by_id()
                if (asset_type is None or asset["assetType"] == asset_type)
                and (adapter is None or asset["adapterName"] == adapter)
            ]
        return _json_response(200, {"count": len(assets), "assets": assets})

    def admin_list_sites(self) -> Response:
        with self.store.lock:
            sites = [self.store.site_view(self.store.sites[key]) for key in sorted(self.store.sites)]
        return _json_response(200, {"count": len(sites), "sites": sites})

    def admin_remote_states(self) -> Response:
        record_id = request.args.get("id")
        kind = request.args.get("kind")
        if kind is not None and kind not in ("asset", "site"):
            raise _AdminError(400, "kind must be asset or site")
        with self.store.lock:
            history = [
                dict(entry)
                for entry in self.store.history
                if (record_id is None or entry["id"] == record_id) and (kind is None or entry["kind"] == kind)
            ]
        return _json_response(200, {"count": len(history), "history": history})

    def admin_telemetry(self) -> Response:
        asset_id = request.args.get("assetId")
        metric = request.args.get("metric")
        limit = request.args.get("limit")
        if metric is not None and metric not in METRICS:
            raise _AdminError(400, f"metric must be one of {', '.join(METRICS)}")
        if asset_id is not None and parse_id(asset_id) is None:
            raise _AdminError(400, "assetId must be a positive integer")
        if limit is not None and (not limit.isdigit() or int(limit) < 1):
            raise _AdminError(400, "limit must be an integer >= 1")
        points = self.store.filter_points(asset_id, metric)
        count = len(points)
        if limit is not None:
            points = points[-int(limit) :]
        return _json_response(200, {"count": count, "points": points})

    def admin_stats(self) -> Response:
        stats = self.stats.snapshot()
        stats.update(self.store.counts())
        stats["tokensActive"] = self.tokens.active()
        stats["activeFaults"] = self.faults.list()
        return _json_response(200, stats)

    def admin_add_fault(self) -> Response:
        body = self._admin_json()
        kind = body.get("kind")
        if kind == "revoke_tokens":
            revoked = self.tokens.revoke_all()
            self.stats.add("tokens_revoked", revoked)
            return _json_response(200, {"revoked": revoked})
        if kind == "clear":
            return _json_response(200, {"cleared": self.faults.clear()})
        try:
            fault = self.faults.add(body)
        except ValueError as error:
            raise _AdminError(400, str(error)) from None
        return _json_response(201, {"fault": fault.__dict__, "faults": self.faults.list()})

    def _record_token(self, token: str) -> None:
        if self.config.issued_tokens_path:
            with open(self.config.issued_tokens_path, "a", encoding="ascii") as f:
                f.write(token + "\n")

    def admin_reset(self) -> Response:
        """Empties the state, the statistics, the faults and the rate-limit windows. Issued tokens
        stay valid, so a connected client is not logged out by a test's reset."""
        self.store.reset()
        self.stats.reset()
        self.faults.clear()
        self.limiter.reset()
        return _json_response(200, {"reset": True})

    # ----- the Flask app -------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("concerto_sim")
        app.config["MAX_CONTENT_LENGTH"] = _MAX_BODY_BYTES

        @app.before_request
        def refuse_remote_admin():
            if request.path.startswith("/admin") and not is_loopback(request.remote_addr):
                return _admin_error(403, "the admin API answers loopback clients only")
            return None

        @app.errorhandler(_AdminError)
        def admin_error(error):
            return _admin_error(error.status, error.message)

        @app.errorhandler(404)
        def not_found(_error):
            return _admin_error(404, f"no route {request.method} {request.path}")

        @app.errorhandler(405)
        def wrong_method(_error):
            return _admin_error(405, f"{request.method} is not allowed on {request.path}")

        @app.errorhandler(413)
        def too_large(_error):
            return _json_response(413, error_body(errors.BAD_USER_INPUT, "request body too large", False))

        routes = [
            ("/graphql", "POST", self.handle_graphql),
            ("/admin/health", "GET", lambda: _json_response(200, {"status": "ok"})),
            ("/admin/systems", "POST", self.admin_enroll_system),
            ("/admin/assets", "GET", self.admin_list_assets),
            ("/admin/assets/<asset_id>", "GET", self.admin_get_asset),
            ("/admin/assets/<asset_id>", "PATCH", self.admin_update_asset),
            ("/admin/assets/<asset_id>", "DELETE", self.admin_delete_asset),
            ("/admin/sites", "GET", self.admin_list_sites),
            ("/admin/sites/<site_id>", "DELETE", self.admin_delete_site),
            ("/admin/remote-states", "GET", self.admin_remote_states),
            ("/admin/telemetry", "GET", self.admin_telemetry),
            ("/admin/stats", "GET", self.admin_stats),
            ("/admin/faults", "GET", lambda: _json_response(200, {"faults": self.faults.list()})),
            ("/admin/faults", "POST", self.admin_add_fault),
            ("/admin/reset", "POST", self.admin_reset),
        ]
        for index, (rule, method, view) in enumerate(routes):
            app.add_url_rule(rule, endpoint=f"route{index}", view_func=view, methods=[method])
        return app


class _AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class SimServer:
    """A threaded HTTP server for a ConcertoSim on (host, port); port 0 picks a free port.
    The socket listens once the constructor returns; start() serves in a background thread."""

    def __init__(self, sim: ConcertoSim, host: str = "127.0.0.1", port: int = 0, log_requests: bool = False):
        if not log_requests:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.sim = sim
        self._server = make_server(host, port, sim.app, threaded=True)
        self._thread: Optional[threading.Thread] = None

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def start(self, poll_interval: float = 0.5) -> "SimServer":
        """`poll_interval` bounds how long stop() waits for the serving loop to notice."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(poll_interval,), name="concerto-sim-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
