"""The HTTP side: contracts/ces-api.md under /systems/v1/, and the admin API under /admin/
(loopback only). Every API request is logged (path, systemIds, HTTP status) for tests to inspect."""

import ipaddress
import threading
from datetime import datetime
from typing import Optional

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from .state import MAX_STATUS_BATCH, STATUS_NAMES, CesState, Refusal


def is_loopback(address: Optional[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def error_response(status: int, code: str, message: str, headers: Optional[dict] = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def split_ids(values: list) -> list:
    """systemIds=a,b (also repeated: systemIds=a&systemIds=b), blanks dropped, order kept."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def create_app(state: CesState, api_key: str) -> Flask:
    app = Flask("ces_sim")
    app.json.sort_keys = False  # keep the contract's field order

    def is_api(path: str) -> bool:
        return not path.startswith("/admin/") and path != "/admin"

    @app.before_request
    def gate():
        if not is_api(request.path):
            if not is_loopback(request.remote_addr):
                return error_response(403, "FORBIDDEN", "the admin API answers loopback clients only")
            return None
        # Parsed before anything can refuse the request, so that the log shows what was asked.
        parts = request.path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["systems", "v1"] and parts[3] == "metadata":
            g.system_ids = [parts[2]]
        else:
            g.system_ids = split_ids(request.args.getlist("systemIds"))
        try:
            state.check_faults()  # an outage answers before authentication does
            if request.headers.get("x-api-key") != api_key:
                raise Refusal(401, "UNAUTHORIZED", "missing or invalid x-api-key")
            state.check_rate_limit()
        except Refusal as refusal:
            return error_response(refusal.status, refusal.code, refusal.message, refusal.headers)
        return None

    @app.after_request
    def log(response: Response) -> Response:
        if is_api(request.path):
            state.log_request(request.method, request.path, g.get("system_ids", []), response.status_code)
        return response

    @app.get("/systems/v1/status")
    def status():
        ids = g.system_ids
        if not ids:
            return error_response(400, "BAD_REQUEST", "systemIds is required (systemIds=ID,ID,...)")
        if len(ids) > MAX_STATUS_BATCH:
            return error_response(400, "BAD_REQUEST",
                                  f"at most {MAX_STATUS_BATCH} systemIds per call, got {len(ids)}")
        # A repeated id is answered once.
        return jsonify(state.statuses(list(dict.fromkeys(ids))))

    @app.get("/systems/v1/<system_id>/metadata")
    def metadata(system_id: str):
        body = state.metadata(system_id, request.args.get("inverterSetting", "").lower() == "true")
        if body is None:
            return error_response(404, "NOT_FOUND", f"no system {system_id}")
        return jsonify(body)

    # -- admin -------------------------------------------------------------------------------------

    def admin_json() -> dict:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise Refusal(400, "BAD_REQUEST", "expected a JSON object body")
        return body

    @app.get("/admin/requests")
    def admin_requests():
        return jsonify(state.requests())

    @app.delete("/admin/requests")
    def admin_clear_requests():
        state.clear_requests()
        return Response(status=204)

    @app.get("/admin/state")
    def admin_state():
        return jsonify(state.snapshot())

    @app.post("/admin/systems/<system_id>/status")
    def admin_set_status(system_id: str):
        name = admin_json().get("statusName")
        if name not in STATUS_NAMES:
            raise Refusal(400, "BAD_REQUEST", f"statusName must be one of {', '.join(STATUS_NAMES)}")
        if not state.set_status(system_id, name):
            raise Refusal(404, "NOT_FOUND", f"no system {system_id}")
        return jsonify({"systemId": system_id, "statusName": name})

    @app.post("/admin/faults")
    def admin_fault():
        body = admin_json()
        kind, count = body.get("kind"), body.get("count")
        if kind not in ("5xx", "429", "clear"):
            raise Refusal(400, "BAD_REQUEST", 'kind must be "5xx", "429" or "clear"')
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise Refusal(400, "BAD_REQUEST", "count must be an integer >= 1 (omit it: until cleared)")
        state.inject_fault(kind, count)
        return jsonify({"kind": kind, "count": count})

    @app.post("/admin/systems")
    def admin_add_system():
        body = admin_json()
        system_id = body.get("systemId")
        if not isinstance(system_id, str) or not system_id or "/" in system_id or "," in system_id:
            raise Refusal(400, "BAD_REQUEST", "systemId must be a non-empty string without '/' or ','")
        for key in ("inverters", "batteries", "pvLinks"):
            if key in body and not isinstance(body[key], list):
                raise Refusal(400, "BAD_REQUEST", f"{key} must be a list")
        if "statusName" in body and body["statusName"] not in STATUS_NAMES:
            raise Refusal(400, "BAD_REQUEST", f"statusName must be one of {', '.join(STATUS_NAMES)}")
        if "siteMeter" in body and not isinstance(body["siteMeter"], dict):
            raise Refusal(400, "BAD_REQUEST", 'siteMeter must be an object {"id": ...} (omit it: no meter)')
        last = body.get("lastCommunicationAt")
        if last is not None:
            try:
                datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ")
            except (TypeError, ValueError):
                raise Refusal(400, "BAD_REQUEST", 'lastCommunicationAt must look like "2026-11-22T10:10:00Z"') from None
        created = state.add_system(body)
        response = jsonify({"systemId": system_id, "created": created})
        response.status_code = 201 if created else 200
        return response

    @app.delete("/admin/systems/<system_id>")
    def admin_delete_system(system_id: str):
        if not state.delete_system(system_id):
            raise Refusal(404, "NOT_FOUND", f"no system {system_id}")
        return Response(status=204)

    # -- errors --------------------------------------------------------------------------------------

    @app.errorhandler(Refusal)
    def refused(refusal: Refusal):
        return error_response(refusal.status, refusal.code, refusal.message, refusal.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        return error_response(error.code or 500, codes.get(error.code, "BAD_REQUEST"), error.description or "")

    return app


class SimServer:
    """A threaded Werkzeug server for the app, on a background thread."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0):
        self._host = host
        self._server = make_server(host, port, app, threaded=True)
        self._thread = None

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def start(self) -> "SimServer":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="ces-sim-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
