"""A stand-in for the AWS Lambda runtime API (version 2018-06-01), for running the real `bootstrap`
(a custom runtime) on a machine without Docker, the way Lambda runs it:

  https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html

    GET  /2018-06-01/runtime/invocation/next            blocks until an event is queued; the body is
                                                        the event, headers Lambda-Runtime-Aws-Request-Id,
                                                        -Deadline-Ms, -Invoked-Function-Arn, -Trace-Id
    POST /2018-06-01/runtime/invocation/<id>/response   the function's answer (must be JSON)
    POST /2018-06-01/runtime/invocation/<id>/error      {"errorMessage", "errorType", "stackTrace"?}
    POST /2018-06-01/runtime/init/error                 the same, when initialisation failed

One `Instance` is one execution environment: a runtime API server on a free 127.0.0.1 port and
one `bootstrap` process with the environment Lambda gives it (AWS_LAMBDA_RUNTIME_API, _HANDLER,
AWS_LAMBDA_FUNCTION_NAME, AWS_REGION, credentials, LAMBDA_TASK_ROOT, ... plus the function's own
variables). `invoke(event, timeout_s)` queues the event and waits for the answer:

  (True, <parsed JSON response>) or (False, {"errorType": ..., "errorMessage": ...})

- a bootstrap that exits during an invocation (or before asking for it) is Runtime.ExitError; the
  next invocation starts a new process on a new server (a cold start), as Lambda does;
- an invocation past its deadline kills the process: Sandbox.Timedout (then a cold start);
- an init error posted to /init/error fails the invocation with its errorType; the process must
  exit (it is killed after INIT_EXIT_GRACE_S) and the next invocation starts it again;
- initialisation (process start to its first /next) is bounded by `init_timeout_s` (Lambda: 10 s)
  and recorded in `init_durations` (seconds) for the benchmark;
- while the runtime waits in /next for an event its process group is stopped (SIGSTOP, then
  SIGCONT when an event comes), as Lambda freezes an idle execution environment: nothing of
  bootstrap runs between invocations (Function(freeze=False) to keep it running).

What bootstrap sends is checked, and a breach of the contract fails loudly (ContractViolation from
invoke, and listed in `violations`): a response body that is not JSON, an error body without
string errorMessage and errorType, an error without the Lambda-Runtime-Function-Error-Type header
(docs/LAMBDA.md promises it), a post for an unknown or already answered request id, a second /next
while an invocation is in flight.

A `Function` is N instances of one function (its concurrency): `invoke` takes a free instance
(waiting for one), so N invocations run at once at most.

bootstrap's stdout goes to the instance's log file; lines of CloudWatch embedded metric format
(EMF, docs/LAMBDA.md "Metrics") are also collected (`emf` of the Function) for the tests' metric
reads. stderr goes to the log file only.
"""

import base64
import json
import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_PREFIX = "/2018-06-01/runtime"
ACCOUNT = "123456789012"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024  # Lambda's synchronous response limit
INIT_EXIT_GRACE_S = 2.0


class ContractViolation(AssertionError):
    """bootstrap broke the runtime API contract (or docs/LAMBDA.md's)."""


def _die_with_parent():
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Spawner:
    """Starts every bootstrap process from one long-lived thread: PR_SET_PDEATHSIG fires when the
    *thread* that forked the child ends, so a process started from an invocation's thread would
    be killed when that thread finished."""

    def __init__(self):
        import queue
        self.jobs = queue.Queue()
        self.thread = None
        self.lock = threading.Lock()

    def _run(self):
        while True:
            kwargs, box, done = self.jobs.get()
            try:
                box.append(subprocess.Popen(**kwargs))
            except Exception as error:  # noqa: BLE001 - handed back to the caller
                box.append(error)
            done.set()

    def popen(self, **kwargs):
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="bootstrap-spawner", daemon=True)
                self.thread.start()
        box, done = [], threading.Event()
        self.jobs.put((kwargs, box, done))
        done.wait()
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]


_SPAWNER = _Spawner()


def trace_id():
    return "Root=1-%08x-%s;Parent=%s;Sampled=0" % (int(time.time()), secrets.token_hex(12), secrets.token_hex(8))


class _Invocation:
    def __init__(self, event, timeout_s):
        self.request_id = str(uuid.uuid4())
        self.body = event if isinstance(event, (bytes, bytearray)) else json.dumps(event).encode()
        self.timeout_s = timeout_s
        self.trace_id = trace_id()
        self.deadline = None          # time.time() when delivered + timeout
        self.delivered_at = None      # time.monotonic()
        self.result = None            # (ok, payload)
        self.finished_at = None


class _Sandbox:
    """One runtime API server and the one bootstrap process it serves (one execution environment's
    life, from a cold start to its death)."""

    def __init__(self, instance):
        self.instance = instance
        self.cond = threading.Condition()
        self.pending = None       # _Invocation queued, not yet fetched by /next
        self.current = None       # _Invocation fetched by /next, not answered
        self.answered = set()     # request ids answered (a second answer is a violation)
        self.init_error = None    # the error posted to /init/error
        self.closed = False
        self.started_at = None
        self.init_duration = None
        self.next_calls = 0
        self.frozen = False
        self.freezes = 0
        self.reading = False      # the stdout reader holds bytes it has not handled yet
        self.flushed_calls = 0    # /next calls whose preceding output has been read (EMF collected)
        self.delivered_on_call = -1  # the /next call that handed over the latest event
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, body=None, headers=None):
                data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path != API_PREFIX + "/invocation/next":
                    return self._send(404, {"errorMessage": "unknown path " + self.path, "errorType": "NotFound"})
                invocation = sandbox.next_invocation()
                if invocation is None:  # the sandbox is closing: this process is being replaced
                    return self._send(410, {"errorMessage": "environment shut down", "errorType": "Shutdown"})
                try:
                    self._send(200, invocation.body, {
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int(invocation.deadline * 1000)),
                        "Lambda-Runtime-Invoked-Function-Arn": sandbox.instance.function_arn,
                        "Lambda-Runtime-Trace-Id": invocation.trace_id,
                    })
                except OSError:
                    pass  # the process died while waiting; the invocation fails as an exit error

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if length == 0 and self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                parts = self.path[len(API_PREFIX):].split("/") if self.path.startswith(API_PREFIX) else []
                # ['', 'invocation', '<id>', 'response'|'error'] or ['', 'init', 'error']
                if parts == ["", "init", "error"]:
                    status, answer = sandbox.post_init_error(body, self.headers)
                elif len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
                    status, answer = sandbox.post_answer(parts[2], parts[3], body, self.headers)
                else:
                    status, answer = 404, {"errorMessage": "unknown path " + self.path, "errorType": "NotFound"}
                self._send(status, answer)

            def _read_chunked(self):
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a killed process's connection
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="lambda-runtime-api", daemon=True)
        self.thread.start()
        self.proc = None

    # ---- the API's side ----

    def next_invocation(self):
        with self.cond:
            self.next_calls += 1
            if self.init_duration is None and self.started_at is not None:
                self.init_duration = time.monotonic() - self.started_at
                self.instance.init_durations.append(self.init_duration)
                self.cond.notify_all()
            if self.current is not None and self.current.result is None:
                self.violation(f"GET /next while invocation {self.current.request_id} is unanswered")
            # What bootstrap wrote before asking for the next event (its EMF lines, docs/LAMBDA.md
            # "Metrics": after each invocation) is read before it is frozen or handed an event.
            self.wait_stdout_drained()
            self.flushed_calls = self.next_calls
            self.cond.notify_all()
            if self.pending is None and not self.closed and self.instance.function.freeze:
                self.freeze()  # as Lambda does: nothing runs until the next event
            while self.pending is None and not self.closed:
                self.cond.wait()
            if self.closed:
                return None
            self.thaw()
            invocation, self.pending = self.pending, None
            self.delivered_on_call = self.next_calls
            invocation.delivered_at = time.monotonic()
            invocation.deadline = time.time() + invocation.timeout_s
            self.current = invocation
            self.cond.notify_all()
            return invocation

    def wait_stdout_drained(self, timeout=2.0):
        """With self.cond held: waits until the stdout pipe is empty and the reader has handled all
        it read (bounded: a process that floods its stdout is not waited for)."""
        import fcntl
        import struct
        import termios
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                buffered = struct.unpack("i", fcntl.ioctl(self.proc.stdout.fileno(), termios.FIONREAD,
                                                          b"\0\0\0\0"))[0]
            except (OSError, ValueError):
                return
            if buffered == 0 and not self.reading:
                return
            self.cond.wait(0.005)

    def in_flight(self):
        """The /next call count while an event handed over has not been followed by the next /next
        (its output, EMF lines included, not all read yet), else None."""
        if self.alive() and not self.closed and self.delivered_on_call == self.next_calls:
            return self.next_calls
        return None

    def freeze(self):
        """SIGSTOP the process group (the runtime waits in /next: Lambda freezes the environment)."""
        if self.alive() and not self.frozen:
            try:
                os.killpg(self.proc.pid, signal.SIGSTOP)
                self.frozen = True
                self.freezes += 1
            except ProcessLookupError:
                pass

    def thaw(self):
        if self.frozen:
            self.frozen = False
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def post_answer(self, request_id, kind, body, headers):
        with self.cond:
            invocation = self.current
            if request_id in self.answered:
                self.violation(f"second {kind} for request {request_id}")
                return 400, {"errorMessage": "Invalid state transition", "errorType": "InvalidStateTransition"}
            if invocation is None or invocation.request_id != request_id:
                self.violation(f"{kind} for unknown request id {request_id!r}")
                return 400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}
            if kind == "response":
                if len(body) > MAX_RESPONSE_BYTES:
                    result = (False, {"errorType": "Function.ResponseSizeTooLarge",
                                      "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum"
                                                      f" allowed payload size ({MAX_RESPONSE_BYTES} bytes)."})
                    self.finish(invocation, result)
                    return 413, {"errorMessage": "Exceeded maximum allowed payload size", "errorType":
                                 "RequestEntityTooLarge"}
                try:
                    payload = json.loads(body.decode("utf-8")) if body else None
                except (UnicodeDecodeError, json.JSONDecodeError) as error:
                    self.violation(f"response of {request_id} is not JSON ({error}): {body[:200]!r}")
                    payload = {"_not_json": body.decode("utf-8", "replace")}
                    self.finish(invocation, (False, {"errorType": "ContractViolation",
                                                     "errorMessage": "response body is not JSON"}))
                    return 202, {"status": "OK"}
                if body == b"":
                    self.violation(f"empty response body for {request_id}")
                self.finish(invocation, (True, payload))
            else:
                error = self.parse_error(body, headers, f"error of {request_id}")
                self.finish(invocation, (False, error))
            return 202, {"status": "OK"}

    def post_init_error(self, body, headers):
        with self.cond:
            if self.next_calls:
                self.violation("POST /init/error after the first /next")
            self.init_error = self.parse_error(body, headers, "init error")
            self.cond.notify_all()
            return 202, {"status": "OK"}

    def parse_error(self, body, headers, what):
        try:
            error = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.violation(f"{what}: body is not JSON: {body[:200]!r}")
            return {"errorType": "ContractViolation", "errorMessage": body.decode("utf-8", "replace")}
        if not isinstance(error, dict) or not isinstance(error.get("errorMessage"), str) \
                or not isinstance(error.get("errorType"), str):
            self.violation(f"{what}: needs string errorMessage and errorType: {error!r}")
            return {"errorType": "ContractViolation", "errorMessage": json.dumps(error)}
        if "stackTrace" in error and not isinstance(error["stackTrace"], list):
            self.violation(f"{what}: stackTrace is not a list: {error!r}")
        header = headers.get("Lambda-Runtime-Function-Error-Type")
        if header is None:
            self.violation(f"{what}: no Lambda-Runtime-Function-Error-Type header")
        elif header != error["errorType"]:
            self.violation(f"{what}: Lambda-Runtime-Function-Error-Type {header!r} != errorType "
                           f"{error['errorType']!r}")
        return {"errorType": error["errorType"], "errorMessage": error["errorMessage"]}

    def violation(self, text):
        self.instance.record_violation(text)

    def finish(self, invocation, result):
        if invocation.result is None:
            invocation.result = result
            invocation.finished_at = time.monotonic()
            self.answered.add(invocation.request_id)
        self.cond.notify_all()

    # ---- the process ----

    def start(self, argv, env, cwd, log):
        env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.port}")
        self.started_at = time.monotonic()
        self.proc = _SPAWNER.popen(args=argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, cwd=cwd,
                                   env=env, start_new_session=True, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self.instance.read_stdout, args=(self.proc.stdout, log, self),
                                       name="bootstrap-stdout", daemon=True)
        self.reader.start()
        self.waiter = threading.Thread(target=self._wait_exit, name="bootstrap-wait", daemon=True)
        self.waiter.start()

    def _wait_exit(self):
        self.proc.wait()
        with self.cond:
            self.cond.notify_all()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.kill()  # SIGKILL ends a stopped process too
        if hasattr(self, "reader"):
            self.reader.join(5)
        self.server.shutdown()
        self.server.server_close()

    def run(self, invocation, init_timeout_s):
        """Queues `invocation` and waits for its end; returns (ok, payload | error), plus whether
        this sandbox must be thrown away."""
        with self.cond:
            self.pending = invocation
            self.thaw()
            self.cond.notify_all()
            while True:
                now = time.monotonic()
                if invocation.result is not None:
                    return invocation.result, False
                if self.init_error is not None:
                    error = dict(self.init_error)
                    # Lambda reports a failed init as the invocation's error; the runtime exits.
                    self.cond.wait_for(lambda: not self.alive(), INIT_EXIT_GRACE_S)
                    if self.alive():
                        self.violation("bootstrap did not exit after POST /init/error")
                    return (False, {"errorType": error["errorType"], "errorMessage": error["errorMessage"],
                                    "phase": "init"}), True
                if not self.alive():
                    code = self.proc.returncode
                    what = f"signal: {signal.Signals(-code).name.lower()}" if code < 0 else f"exit status {code}"
                    return (False, {"errorType": "Runtime.ExitError",
                                    "errorMessage": f"RequestId: {invocation.request_id} Error: Runtime exited "
                                                    f"with error: {what}",
                                    "phase": "init" if invocation.delivered_at is None else "invoke"}), True
                if invocation.delivered_at is None:
                    limit = self.started_at + init_timeout_s if self.init_duration is None else None
                    if limit is not None and now >= limit:
                        return (False, {"errorType": "Sandbox.Timedout", "phase": "init",
                                        "errorMessage": f"RequestId: {invocation.request_id} Error: init timed out "
                                                        f"after {init_timeout_s:.2f} seconds"}), True
                    self.cond.wait(0.05 if limit is None else max(0.0, min(0.05, limit - now)))
                    continue
                limit = invocation.delivered_at + invocation.timeout_s
                if now >= limit:
                    return (False, {"errorType": "Sandbox.Timedout", "phase": "invoke",
                                    "errorMessage": f"RequestId: {invocation.request_id} Error: Task timed out "
                                                    f"after {invocation.timeout_s:.2f} seconds"}), True
                self.cond.wait(min(0.05, limit - now))


class Instance:
    """One execution environment of a function: restarted (a cold start) after its process died,
    timed out or failed its initialisation."""

    def __init__(self, function, index):
        self.function = function
        self.index = index
        self.function_arn = function.function_arn
        self.init_durations = function.init_durations
        self.lock = threading.Lock()
        self.sandbox = None
        self.starts = 0
        self.log_path = os.path.join(function.workdir, f"{function.name}-{index}.log")
        self.log = open(self.log_path, "ab", buffering=0)

    def record_violation(self, text):
        self.function.record_violation(f"{self.function.name}[{self.index}]: {text}")

    def read_stdout(self, stream, log, sandbox):
        """Copies bootstrap's stdout to the log and collects its EMF lines. `sandbox.reading` is
        True while bytes read are not handled yet (see _Sandbox.wait_stdout_drained)."""
        import select
        fd = stream.fileno()
        pending = b""
        while True:
            select.select([fd], [], [])  # readable: bytes in the pipe (FIONREAD > 0) or its end
            with sandbox.cond:
                sandbox.reading = True
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                log.write(raw + b"\n")
                self._line(raw)
            with sandbox.cond:
                sandbox.reading = False
                sandbox.cond.notify_all()
        if pending:
            log.write(pending)
            self._line(pending)
        with sandbox.cond:
            sandbox.reading = False
            sandbox.cond.notify_all()
        stream.close()

    def _line(self, raw):
        line = raw.decode("utf-8", "replace").strip()
        if line.startswith("{") and '"_aws"' in line:
            try:
                self.function.add_emf(json.loads(line))
            except (json.JSONDecodeError, ValueError, KeyError, TypeError) as error:
                self.record_violation(f"bad EMF line ({error}): {line[:300]}")

    def ensure_started(self):
        if self.sandbox is not None and self.sandbox.alive():
            return
        if self.sandbox is not None:
            self.sandbox.close()
        self.sandbox = _Sandbox(self)
        self.starts += 1
        env = self.function.environment()
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = time.strftime("%Y/%m/%d/[$LATEST]") + secrets.token_hex(16)
        self.log.write(f"---- {time.strftime('%H:%M:%S')} cold start #{self.starts} "
                       f"(runtime API 127.0.0.1:{self.sandbox.port})\n".encode())
        self.sandbox.start(self.function.argv, env, self.function.task_root, self.log)

    def invoke(self, event, timeout_s=None):
        timeout_s = self.function.timeout_s if timeout_s is None else timeout_s
        with self.lock:
            self.ensure_started()
            invocation = _Invocation(event, timeout_s)
            result, discard = self.sandbox.run(invocation, self.function.init_timeout_s)
            if discard:
                self.log.write(f"---- {time.strftime('%H:%M:%S')} {result[1]['errorType']}: "
                               f"{result[1]['errorMessage']}\n".encode())
                self.sandbox.close()
                self.sandbox = None
            self.function.record_invocation(self, invocation, result)
            if result[1] is not None and isinstance(result[1], dict) and result[1].get("errorType") \
                    == "ContractViolation":
                raise ContractViolation("; ".join(self.function.violations))
            return result

    def warm_init(self):
        """Starts the process if needed and waits for its first /next (init measured)."""
        with self.lock:
            self.ensure_started()
            sandbox = self.sandbox
            with sandbox.cond:
                ok = sandbox.cond.wait_for(lambda: sandbox.init_duration is not None or not sandbox.alive()
                                           or sandbox.init_error is not None, self.function.init_timeout_s)
            if not ok or sandbox.init_duration is None:
                raise AssertionError(f"{self.function.name}[{self.index}] did not reach /next: "
                                     f"{self.tail_log()}")
            return sandbox.init_duration

    def kill(self):
        """SIGKILLs the running process (e.g. mid-invocation, as a test); invoke reports the exit."""
        sandbox = self.sandbox
        if sandbox is not None:
            sandbox.kill()

    def running_invocation(self):
        sandbox = self.sandbox
        if sandbox is None:
            return None
        current = sandbox.current
        return current if current is not None and current.result is None else None

    def tail_log(self, n=3000):
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")

    def close(self):
        with self.lock:
            if self.sandbox is not None:
                self.sandbox.close()
                self.sandbox = None
        self.log.close()


class Function:
    """N instances of one function. `variables` are the function's environment variables (the
    template's); `base_env` the AWS ones the harness adds (credentials, endpoint)."""

    def __init__(self, name, handler, bootstrap, workdir, variables=None, base_env=None, concurrency=1,
                 timeout_s=30.0, init_timeout_s=10.0, region="us-east-1", memory_mb=256, freeze=True):
        self.name = name
        self.handler = handler
        self.argv = bootstrap if isinstance(bootstrap, (list, tuple)) else [bootstrap]
        self.workdir = workdir
        self.task_root = os.path.join(workdir, "task-" + name)
        os.makedirs(self.task_root, exist_ok=True)
        self.variables = dict(variables or {})
        self.base_env = dict(base_env or {})
        self.timeout_s = timeout_s
        self.init_timeout_s = init_timeout_s
        self.region = region
        self.memory_mb = memory_mb
        self.freeze = freeze  # SIGSTOP an idle process (waiting in /next) until its next event, as Lambda
        self.function_arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"
        self.init_durations = []
        self.violations = []
        self.invocations = []  # (instance index, request id, ok, payload | error, duration s)
        self.emf = []          # parsed EMF objects, in arrival order
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self.instances = [Instance(self, i) for i in range(concurrency)]
        self._busy = set()

    def environment(self):
        """The environment Lambda gives a provided.al2023 function's process (without PATH
        extras), then the credentials and the function's variables."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LD_LIBRARY_PATH": "/lib64:/usr/lib64:" + self.task_root + ":" + self.task_root + "/lib:/opt/lib",
            "_HANDLER": self.handler,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/" + self.name,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "LAMBDA_TASK_ROOT": self.task_root,
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        }
        # Sanitizer settings of a CI run reach the process as they would any test binary.
        for key, value in os.environ.items():
            if key.endswith("SAN_OPTIONS") or key == "LLVM_PROFILE_FILE":
                env[key] = value
        env.update(self.base_env)
        env.update({k: str(v) for k, v in self.variables.items()})
        return env

    def record_violation(self, text):
        with self._lock:
            self.violations.append(text)

    def record_invocation(self, instance, invocation, result):
        with self._lock:
            started = invocation.delivered_at
            duration = (invocation.finished_at or time.monotonic()) - started if started else None
            self.invocations.append((instance.index, invocation.request_id, result[0], result[1], duration))

    def add_emf(self, document):
        aws = document["_aws"]
        for directive in aws["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if metric["Name"] not in document:
                    raise KeyError(f"metric {metric['Name']} has no value")
            for dims in directive["Dimensions"]:
                for dim in dims:
                    if dim not in document:
                        raise KeyError(f"dimension {dim} has no value")
        with self._lock:
            self.emf.append(document)

    def invoke(self, event, timeout_s=None):
        """Runs one invocation on a free instance (waits for one); (ok, payload | error)."""
        with self._free:
            while True:
                free = [i for i in self.instances if i.index not in self._busy]
                if free:
                    instance = free[0]
                    self._busy.add(instance.index)
                    break
                self._free.wait()
        try:
            return instance.invoke(event, timeout_s)
        finally:
            with self._free:
                self._busy.discard(instance.index)
                self._free.notify_all()

    def settle(self, timeout=15.0):
        """Waits until every invocation running now has ended and the EMF lines its process wrote
        after it have been collected (bootstrap writes them when an invocation ends, before its next
        /next), so that `emf` is as of that moment; bounded by `timeout`."""
        waits = []
        for instance in self.instances:
            sandbox = instance.sandbox
            if sandbox is not None:
                calls = sandbox.in_flight()
                if calls is not None:
                    waits.append((sandbox, calls))
        deadline = time.monotonic() + timeout
        for sandbox, calls in waits:
            with sandbox.cond:
                sandbox.cond.wait_for(lambda: sandbox.flushed_calls > calls or not sandbox.alive() or sandbox.closed,
                                      max(0.0, deadline - time.monotonic()))

    def check(self):
        """Raises ContractViolation if bootstrap broke the contract at any time."""
        with self._lock:
            if self.violations:
                raise ContractViolation(f"{self.name}: " + "; ".join(self.violations))

    def close(self):
        for instance in self.instances:
            instance.close()


def emf_samples(documents):
    """EMF documents -> {(name, frozenset(labels.items())): value}, the shape of harness.parse_metrics:
    counters (names ending in _total: bootstrap writes the delta since its previous invocation) are
    summed over every line of every process; other metrics (gauges: bootstrap writes the current
    value) keep the value of the newest line per series."""
    samples, stamps = {}, {}
    for document in documents:
        timestamp = document["_aws"].get("Timestamp", 0)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            dimension_sets = directive["Dimensions"] or [[]]
            labels = frozenset((dim, str(document[dim])) for dim in dimension_sets[0])
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = document[name]
                values = value if isinstance(value, list) else [value]
                key = (name, labels)
                if name.endswith("_total"):
                    samples[key] = samples.get(key, 0.0) + float(sum(values))
                elif timestamp >= stamps.get(key, -1):
                    samples[key] = float(values[-1])
                    stamps[key] = timestamp
    return samples


def b64(data):
    return base64.b64encode(bytes(data)).decode()
