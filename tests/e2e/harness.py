"""End-to-end harness: the adapter (`pwrcell-adapter serve`) against the simulators, as separate
processes on free ports, with small intervals so that a test takes seconds.

Environment (set by tests/e2e/CMakeLists.txt; defaults assume build/bin of this tree):
  PWRCELL_BIN_DIR      the directory holding pwrcell-adapter, concerto-sim, ces-sim, fleet-sim
  PWRCELL_SOURCE_DIR   the repository root
  PWRCELL_E2E_KEEP     when set, every Stack keeps its directory (logs, store) after the test
  PWRCELL_E2E_BACKEND  "embedded" (default: one SQLite file, telemetry over HTTP) or "aws": each
                       Stack starts its own moto_server, creates the tables, queues and the Kinesis
                       stream with `pwrcell-adapter aws setup` and the two secrets in Secrets
                       Manager, runs `serve` with `[backend] kind = "aws"`, and fleet-sim feeds the
                       Kinesis stream (start_fleet) instead of the HTTP ingest endpoint;
                       "lambda": as "aws" (moto, `aws setup`, the secrets, fleet-sim into the
                       Kinesis stream), but instead of `serve` the functions of docs/LAMBDA.md run
                       as `bootstrap` processes under tests/lambda's runtime API stand-in, fed by
                       its event source mappings and schedules (tests/lambda/lambda_deployment.py);
                       device reads use `pwrcell-adapter devices list/show --json --config` on the
                       AWS store, metrics are the sums of the EMF lines the functions print

Typical use:

    stack = Stack(self, scenario=live_scenario(systems=4), auto_commissioning=True)
    stack.start()                       # concerto-sim, ces-sim, the adapter; stops at test end
    ids = stack.enroll_fleet()          # SYSTEM assets in Concerto for every fleet system
    stack.start_fleet()                 # fleet-sim posting to the adapter's ingest endpoint
    wait_for(lambda: ..., "what we wait for")

At its close every Stack scans the log of every program it ran (*.log under its directory: serve,
the bootstrap instances, the simulators, moto, the CLI runs it made) for the secrets of the run
(secret_scan.py: the Concerto password, every token concerto-sim issued, the CES API key, the
AWS secret key and session token, every string of the secrets file and of the Secrets Manager
secrets, and what a test adds with add_secret) and fails the test naming file and line of a hit.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import secret_scan

SOURCE_DIR = os.environ.get("PWRCELL_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN_DIR = os.path.abspath(os.environ.get("PWRCELL_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin")))
ADAPTER = os.path.join(BIN_DIR, "pwrcell-adapter")
CONCERTO_SIM = os.path.join(BIN_DIR, "concerto-sim")
CES_SIM = os.path.join(BIN_DIR, "ces-sim")
FLEET_SIM = os.path.join(BIN_DIR, "fleet-sim")

EMAIL = "admin@example.com"
# Long and random, so that one found in a log (secret_scan.py) can only have come from the run.
PASSWORD = "e2e-concerto-password-" + os.urandom(12).hex()
API_KEY = "e2e-ces-api-key-" + os.urandom(12).hex()
AWS_SECRET_KEY = "e2e-aws-secret-key-" + os.urandom(12).hex()  # moto takes any
AWS_SESSION_TOKEN = "e2e-aws-session-token-" + os.urandom(12).hex()
ADAPTER_NAME = "pwrcell-adapter"
BACKEND = os.environ.get("PWRCELL_E2E_BACKEND", "embedded")
MOTO_FIXTURE = os.path.join(SOURCE_DIR, "tests", "aws", "moto_fixture.py")
BOOTSTRAP = os.path.join(BIN_DIR, "bootstrap")
LAMBDA_DIR = os.path.join(SOURCE_DIR, "tests", "lambda")


def wait_for(predicate, what, timeout=30.0, interval=0.2):
    """Polls predicate() until it returns a truthy value (returned); fails naming `what`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, OSError, KeyError, ValueError) as error:
            last_error = error
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


def http(method, url, body=None, headers=None, timeout=10.0):
    """(status, parsed JSON or text) of one request; never raises for HTTP error statuses."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def live_scenario(systems=4, seed=4242, interval_s=1, faults="", ac_coupled_fraction=0.3,
                  site_meter_fraction=1.0, name="e2e"):
    """A scenario on a live clock (start = now, speed 1): the adapter judges staleness by its own
    clock, so records must be stamped with real time."""
    return f"""
[scenario]
name = "{name}"
seed = {seed}
systems = {systems}
start = "now"
interval_s = {interval_s}
speed = 1
ac_coupled_fraction = {ac_coupled_fraction}
site_meter_fraction = {site_meter_fraction}
{faults}
"""


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): value}."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if not match:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[(match.group(1), frozenset(labels.items()))] = float(match.group(3))
    return samples


def metric(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(value for (n, ls), value in samples.items() if n == name and want <= set(ls))


def _die_with_parent():
    """In the child before exec: SIGKILL it when the test process dies, however it dies (a CTest
    timeout kills the test without running its cleanups), so no simulator or adapter outlives
    the test. Linux only (prctl PR_SET_PDEATHSIG); elsewhere a no-op."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class Process:
    """A child process whose stdout+stderr go to a log file; `wait_line` finds a line in it."""

    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir,
                                     env=env, start_new_session=True, preexec_fn=_die_with_parent)

    def log(self):
        with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_line(self, pattern, timeout=30.0):
        regex = re.compile(pattern)

        def found():
            if self.proc.poll() is not None and not regex.search(self.log()):
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return regex.search(self.log())

        return wait_for(found, f"{self.name} to log /{pattern}/", timeout)

    def stop_when_done(self, timeout=60.0):
        """Waits for the process to exit by itself (SIGTERM after `timeout`); its exit code."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.stop()

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Sends `sig`, waits, returns the exit code (SIGKILL after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)


class Stack:
    """concerto-sim + ces-sim + the adapter (+ fleet-sim on demand) in a temporary directory."""

    def __init__(self, test, scenario=None, auto_commissioning=True, config=None, token_ttl=1800,
                 concerto_rate_limit=0, ces_rate_limit=0):
        self.test = test
        self.scenario_text = scenario if scenario is not None else live_scenario()
        self.auto_commissioning = auto_commissioning
        self.extra_config = config or {}
        self.token_ttl = token_ttl
        self.concerto_rate_limit = concerto_rate_limit
        self.ces_rate_limit = ces_rate_limit
        self.dir = tempfile.mkdtemp(prefix="pwrcell-e2e-")
        self.scenario_path = os.path.join(self.dir, "scenario.toml")
        with open(self.scenario_path, "w") as f:
            f.write(self.scenario_text)
        self.concerto = self.ces = self.adapter = self.fleet = None
        self.adapters = []  # every serve process started, in order (start_adapter)
        self.concerto_url = self.ces_url = self.admin_url = self.ingest_url = None
        self._fleet_cache = None
        self._adapter_runs = 0
        self.backend = BACKEND
        self.moto_dir = self.moto_url = None
        self.aws_names = {}
        self.secret_arns = {}
        self.lambda_options = {}     # lambda mode: LambdaDeployment keyword arguments (only, ...)
        self.deployments = []        # lambda mode: every LambdaDeployment started, in order
        self._emf_retired = []       # lambda mode: EMF documents of the deployments stopped
        self.issued_tokens_path = os.path.join(self.dir, "concerto-issued-tokens.txt")  # not a log
        self.secrets = secret_scan.Secrets()
        for value, label in ((PASSWORD, "the Concerto password"), (API_KEY, "the CES API key"),
                             (AWS_SECRET_KEY, "the AWS secret access key"),
                             (AWS_SESSION_TOKEN, "the AWS session token")):
            self.secrets.add(value, label)
        self._outputs = 0
        self._closed = False
        test.addCleanup(self.close)

    @property
    def on_aws(self):
        """True when the adapter's store is on AWS (moto): the "aws" and "lambda" backends."""
        return self.backend in ("aws", "lambda")

    # ---- AWS (PWRCELL_E2E_BACKEND=aws) ----

    def aws_env(self):
        """The environment of every program that talks to AWS (moto): the standard variables."""
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": AWS_SECRET_KEY,
                    "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.moto_url})
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_DEFAULT_REGION", None)
        return env

    def start_moto(self):
        """Starts this stack's moto_server, then creates the adapter's resources on it: the tables,
        queues and stream with `pwrcell-adapter aws setup` (the command an operator runs), the two
        secrets with boto3 (as an operator creates them with the AWS CLI)."""
        self.moto_dir = os.path.join(self.dir, "moto")
        subprocess.run(["python3", MOTO_FIXTURE, "start", self.moto_dir], check=True, capture_output=True,
                       timeout=90)
        with open(os.path.join(self.moto_dir, "endpoint")) as f:
            self.moto_url = f.read().strip()
        prefix = "e2e-" + os.path.basename(self.dir).replace("_", "-").lower()
        self.aws_names = {
            "device_table": prefix + "-devices", "coordination_table": prefix + "-coordination",
            "ingest_queue": prefix + "-ingest", "concerto_queue": prefix + "-concerto",
            "concerto_telemetry_queue": prefix + "-concerto-telemetry", "ces_queue": prefix + "-ces",
            "telemetry_stream": prefix + "-telemetry",
        }
        import boto3  # the machine's python3 has it (with moto)
        client = boto3.client("secretsmanager", endpoint_url=self.moto_url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key=AWS_SECRET_KEY)
        self.secret_ids = {"ConcertoCredentials": prefix + "-ConcertoCredentials",
                           "CesCredentials": prefix + "-CesCredentials"}
        self.secret_arns["ConcertoCredentials"] = client.create_secret(
            Name=self.secret_ids["ConcertoCredentials"],
            SecretString=json.dumps({"email": EMAIL, "password": PASSWORD}))["ARN"]
        self.secret_arns["CesCredentials"] = client.create_secret(
            Name=self.secret_ids["CesCredentials"], SecretString=json.dumps({"api_key": API_KEY}))["ARN"]
        path = self.write_config()
        setup = self.keep_output("aws-setup", subprocess.run(
            [ADAPTER, "aws", "setup", "--config", path, "--stream-shards", "2"], capture_output=True, text=True,
            timeout=120, env=self.aws_env()))
        if setup.returncode != 0:
            raise AssertionError(f"aws setup failed ({setup.returncode}):\n{setup.stdout}\n{setup.stderr}")

    def put_kinesis(self, blob, partition_key=None):
        """Puts one serialized EnergyRecordSet on the stack's Kinesis stream (AWS mode)."""
        import uuid
        self.boto3("kinesis").put_record(StreamName=self.aws_names["telemetry_stream"], Data=bytes(blob),
                                         PartitionKey=partition_key or uuid.uuid4().hex)

    def boto3(self, service):
        import boto3
        return boto3.client(service, endpoint_url=self.moto_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key=AWS_SECRET_KEY)

    # ---- lifecycle ----

    def start(self, adapter=True):
        self.concerto = Process("concerto-sim", [CONCERTO_SIM, "--port", "0", "--email", EMAIL, "--password",
                                                 PASSWORD, "--token-ttl", str(self.token_ttl), "--rate-limit",
                                                 str(self.concerto_rate_limit), "--issued-tokens",
                                                 self.issued_tokens_path], self.dir)
        self.ces = Process("ces-sim", [CES_SIM, "--port", "0", "--api-key", API_KEY, "--scenario",
                                       self.scenario_path, "--rate-limit", str(self.ces_rate_limit)], self.dir)
        self.concerto_url = "http://" + self.concerto.wait_line(r"listening on http://(\S+)").group(1)
        self.ces_url = "http://" + self.ces.wait_line(r"listening on http://(\S+)").group(1)
        self.write_secrets()
        if self.on_aws:
            self.start_moto()
        if adapter:
            self.start_adapter()
        return self

    def write_secrets(self):
        path = os.path.join(self.dir, "secrets.json")
        with open(path, "w") as f:
            json.dump({"ConcertoCredentials": {"email": EMAIL, "password": PASSWORD},
                       "CesCredentials": {"api_key": API_KEY}}, f)
        os.chmod(path, 0o600)

    def config_text(self):
        return render_toml(self.config_sections())

    def config_sections(self):
        """{section: {key: value}}: the adapter's configuration (deployment.toml for `serve` and the
        CLI; on the lambda backend also the source of the functions' environment)."""
        sections = {
            "adapter": {"name": ADAPTER_NAME, "auto_commissioning": self.auto_commissioning},
            "concerto": {"root_url": self.concerto_url, "timeout_s": 5, "max_requests_per_second": 200},
            "ces": {"root_url": self.ces_url, "timeout_s": 5, "max_requests_per_second": 100},
            "schedule": {"registrar_poll_s": 1, "ces_state_poll_s": 2, "liveness_sweep_s": 1},
            "liveness": {"offline_timeout_s": 6, "record_interval_s": 1},
            "queues": {"visibility_timeout_s": 10},
            "secrets": {"path": os.path.join(self.dir, "secrets.json")},
            "storage": {"path": os.path.join(self.dir, "adapter.db")},
            "telemetry": {"listen": "127.0.0.1:0"},
            "admin": {"listen": "127.0.0.1:0"},
            "simulated": {"record_interval_s": 1},
        }
        if self.on_aws:
            sections["backend"] = {"kind": "aws"}
            sections["aws"] = dict(self.aws_names, receive_wait_s=1)
            sections["secrets"] = {"backend": "aws"}
            sections["concerto"]["credentials_secret"] = self.secret_ids["ConcertoCredentials"]
            sections["ces"]["credentials_secret"] = self.secret_ids["CesCredentials"]
        for dotted, value in self.extra_config.items():
            section, key = dotted.split(".", 1)
            sections.setdefault(section, {})[key] = value
        return sections

    def start_adapter(self, additional=False):
        """Starts `serve` (again, on the same database after a stop or kill); the process carries
        its own `admin_url` and `ingest_url`. With `additional`, one more `serve` beside the running
        one(s) (same configuration and store file, its own ports): `self.adapter`, `self.admin_url`
        and `self.ingest_url` keep naming the one started before."""
        self._adapter_runs += 1
        path = self.write_config()
        if self.backend == "lambda":
            return self.start_lambda(additional)
        process = Process(f"adapter-{self._adapter_runs}", [ADAPTER, "serve", "--config", path], self.dir,
                          env=self.aws_env() if self.backend == "aws" else None)
        self.adapters.append(process)
        process.admin_url = "http://" + process.wait_line(r"admin server listening on (\S+)").group(1)
        process.ingest_url = "http://" + process.wait_line(r"ingest server listening on (\S+)").group(1) + \
            "/v1/telemetry"
        if not additional or self.adapter is None:
            self.adapter, self.admin_url, self.ingest_url = process, process.admin_url, process.ingest_url
        return process

    def start_lambda(self, additional=False):
        """Lambda mode: the functions of docs/LAMBDA.md with their mappings (a deployment of the
        stack); a start after stop() or kill() is a new deployment (every instance cold)."""
        import unittest
        if additional:
            raise unittest.SkipTest("a second `serve` beside the first has no Lambda counterpart")
        if not os.path.exists(BOOTSTRAP):
            raise AssertionError(f"no bootstrap at {BOOTSTRAP} (CMake target `bootstrap`)")
        import sys
        if LAMBDA_DIR not in sys.path:
            sys.path.insert(0, LAMBDA_DIR)
        from lambda_deployment import LambdaDeployment
        deployment = LambdaDeployment(BOOTSTRAP, os.path.join(self.dir, f"lambda-{self._adapter_runs}"),
                                      self.config_sections(), self.aws_names, self.secret_arns,
                                      self.lambda_aws_env(), self.boto3,
                                      **self.lambda_options)
        adapter = LambdaAdapter(self, deployment)
        self.deployments.append(deployment)
        self.adapters.append(adapter)
        deployment.start()
        self.adapter, self.admin_url, self.ingest_url = adapter, None, None
        return adapter

    def lambda_aws_env(self):
        """The AWS variables of a function's process: Lambda's (a role's temporary credentials, so
        a session token too; moto takes any) and moto's endpoint."""
        env = {k: v for k, v in self.aws_env().items() if k.startswith("AWS_")}
        env["AWS_SESSION_TOKEN"] = AWS_SESSION_TOKEN
        return env

    def write_config(self):
        path = os.path.join(self.dir, "deployment.toml")
        with open(path, "w") as f:
            f.write(self.config_text())
        return path

    def start_fleet(self, extra=(), sink=None):
        """fleet-sim on the scenario, into `sink` (default: the Kinesis stream on AWS, else the
        adapter's HTTP ingest endpoint)."""
        if sink is None:
            sink = "kinesis:" + self.aws_names["telemetry_stream"] if self.on_aws else self.ingest_url
        self.fleet = Process("fleet-sim", [FLEET_SIM, "--scenario", self.scenario_path, "--sink", sink, *extra],
                             self.dir, env=self.aws_env() if self.on_aws else None)
        return self.fleet

    def close(self):
        """Stops every program (the adapter first, moto last), then fails when a log shows a secret
        of the run or bootstrap broke the Lambda contract (the directory is kept then)."""
        if self._closed:
            return
        self._closed = True

        def stop(processes):
            for process in processes:
                if process is not None:
                    try:
                        process.stop(timeout=15)
                    except Exception:  # noqa: BLE001 - cleanup must go on
                        pass
        stop((self.fleet, *reversed(self.adapters)))
        self.collect_secrets()  # Secrets Manager's secrets while moto still runs
        stop((self.ces, self.concerto))
        if self.moto_dir is not None:
            subprocess.run(["python3", MOTO_FIXTURE, "stop", self.moto_dir], capture_output=True, timeout=60)
        leaks = self.secret_leaks()
        lambda_problems = self.lambda_violations()
        if os.environ.get("PWRCELL_E2E_KEEP") or lambda_problems or leaks:
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if leaks:
            raise AssertionError(f"{len(leaks)} log line(s) show a secret of the run (in {self.dir}):\n"
                                 + secret_scan.describe(leaks))
        if lambda_problems:
            raise AssertionError("Lambda contract violations: " + "; ".join(lambda_problems[:20]))

    # ---- secrets in logs (issue 13 item 5) ----

    def add_secret(self, value, label):
        """One more value no log may show (e.g. a key a test configures); 16 characters or more."""
        self.secrets.add(value, label)

    def concerto_tokens(self):
        """Every access token concerto-sim issued so far (its --issued-tokens file)."""
        try:
            with open(self.issued_tokens_path, encoding="ascii") as f:
                return [line for line in f.read().splitlines() if line]
        except FileNotFoundError:
            return []

    def collect_secrets(self):
        """Adds what the run's secrets hold now: the tokens concerto-sim issued, every string of
        the secrets file (the token the adapter wrote back, ingest access keys) and, on AWS, of
        every secret in this stack's moto Secrets Manager."""
        for n, token in enumerate(self.concerto_tokens(), start=1):
            self.secrets.add(token, f"Concerto access token #{n}")
        path = os.path.join(self.dir, "secrets.json")
        try:
            with open(path) as f:
                self.secrets.add_json(json.load(f), "secrets.json")
        except (OSError, ValueError):
            pass
        if self.moto_url is not None:
            try:
                client = self.boto3("secretsmanager")
                for page in client.get_paginator("list_secrets").paginate():
                    for entry in page["SecretList"]:
                        value = client.get_secret_value(SecretId=entry["ARN"]).get("SecretString")
                        try:
                            document = json.loads(value)
                        except (TypeError, ValueError):
                            document = value
                        self.secrets.add_json(document, "secret " + entry["Name"])
            except Exception as error:  # noqa: BLE001 - moto gone (killed by a test): the rest still counts
                print(f"could not read the Secrets Manager secrets: {error}")

    def secret_leaks(self):
        """[(file, line, label, redacted)] of every line of every log under the stack's directory
        that shows a secret of the run (secret_scan.scan)."""
        return secret_scan.scan(secret_scan.log_files(self.dir), self.secrets, root=self.dir)

    def keep_output(self, name, completed):
        """Writes a finished subprocess.run's stdout and stderr to <name>-<n>.log in the stack's
        directory (scanned at close like every log); returns `completed`."""
        self._outputs += 1
        with open(os.path.join(self.dir, f"{name}-{self._outputs}.log"), "w", encoding="utf-8",
                  errors="replace") as f:
            for stream in (completed.stdout, completed.stderr):
                if stream:
                    f.write(stream if isinstance(stream, str) else stream.decode("utf-8", "replace"))
        return completed

    # ---- the fleet ----

    def fleet_systems(self):
        if self._fleet_cache is None:
            out = subprocess.run([FLEET_SIM, "--scenario", self.scenario_path, "--print-fleet"], check=True,
                                 capture_output=True, text=True).stdout
            self._fleet_cache = json.loads(out)["systems"]
        return self._fleet_cache

    def enroll(self, remote_id, name=None, simulated=False, rated_power=None, adapter_name=ADAPTER_NAME):
        body = {"remoteId": remote_id, "name": name or remote_id, "adapterName": adapter_name,
                "simulated": simulated}
        if rated_power is not None:
            body["ratedPower"] = rated_power
        status, asset = http("POST", self.concerto_url + "/admin/systems", body)
        self.test.assertEqual(status, 201, asset)
        return asset

    def enroll_fleet(self):
        return [self.enroll(s["systemId"], s.get("siteName"))["remoteId"] for s in self.fleet_systems()]

    # ---- reading back ----

    def concerto_get(self, path):
        status, body = http("GET", self.concerto_url + path)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body}")
        return body

    def assets(self, asset_type=None):
        query = f"?type={asset_type}" if asset_type else ""
        return self.concerto_get("/admin/assets" + query)["assets"]

    def sites(self):
        return self.concerto_get("/admin/sites")["sites"]

    def stats(self):
        return self.concerto_get("/admin/stats")

    def remote_states(self, asset_id=None, kind=None):
        params = []
        if asset_id is not None:
            params.append(f"id={asset_id}")
        if kind is not None:
            params.append(f"kind={kind}")
        return self.concerto_get("/admin/remote-states" + ("?" + "&".join(params) if params else ""))["history"]

    def telemetry(self, asset_id=None, metric_name=None, limit=None):
        params = []
        if asset_id is not None:
            params.append(f"assetId={asset_id}")
        if metric_name is not None:
            params.append(f"metric={metric_name}")
        if limit is not None:
            params.append(f"limit={limit}")
        body = self.concerto_get("/admin/telemetry" + ("?" + "&".join(params) if params else ""))
        return body["points"]

    def concerto_fault(self, **fault):
        status, body = http("POST", self.concerto_url + "/admin/faults", fault)
        self.test.assertIn(status, (200, 201), body)  # 201: a fault queued; 200: clear / revoke_tokens
        return body

    def ces_requests(self):
        status, body = http("GET", self.ces_url + "/admin/requests")
        self.test.assertEqual(status, 200, body)
        return body["requests"]

    def devices(self):
        if self.backend == "lambda":
            return self.cli_devices("list")
        status, body = http("GET", self.admin_url + "/api/devices")
        self.test.assertEqual(status, 200, body)
        return body["devices"]

    def device(self, remote_id):
        if self.backend == "lambda":
            return self.cli_devices("show", remote_id)
        status, body = http("GET", self.admin_url + "/api/devices/" + remote_id)
        return body if status == 200 else None

    def cli_devices(self, command, remote_id=None):
        """Lambda mode (no admin API): `pwrcell-adapter devices list|show --json --config` on the
        AWS store. show: the record, or None when it exits 4 (no such device)."""
        args = [ADAPTER, "devices", command, *([remote_id] if remote_id else []), "--json", "--config",
                os.path.join(self.dir, "deployment.toml")]
        if not Stack._cli_reads_aws:
            found = self.dynamodb_devices(remote_id) if command == "show" else self.dynamodb_devices()
        else:
            run = self.keep_output("cli-devices", subprocess.run(args, capture_output=True, text=True, timeout=60,
                                                                 env=self.aws_env()))
            if command == "show" and run.returncode == 4:
                return None
            if run.returncode == 3 and "keeps the store on AWS" in run.stderr:
                Stack._cli_reads_aws = False  # a pwrcell-adapter from before the CLI read AWS stores
                return self.cli_devices(command, remote_id)
            if run.returncode != 0:
                raise AssertionError(f"devices {command} exited {run.returncode}: {run.stderr.strip()[-2000:]}")
            found = json.loads(run.stdout)
        # The admin API's one addition to the record's JSON (runtime/http/device_api.cc DeviceJson).
        for record in (found if isinstance(found, list) else [found] if found else []):
            record["kind"] = "simulated" if record.get("is_simulated") else "real"
        return found

    _cli_reads_aws = True

    def dynamodb_devices(self, remote_id=None):
        """Until the CLI reads the AWS store: the device records straight from the DynamoDB table
        (src/adapters/aws/dynamodb_device_store.h: the "rec" item's JSON, plus last_heard_at and the
        inverter readings of the "hot" item of the same incarnation). One record (or None) for a
        remote_id, else the list in remote_id order."""
        client = self.boto3("dynamodb")
        table = self.aws_names["device_table"]
        if remote_id is not None:
            items = client.query(TableName=table, ConsistentRead=True, KeyConditionExpression="pk = :pk",
                                 ExpressionAttributeValues={":pk": {"S": "d#" + remote_id}})["Items"]
        else:
            items, start = [], None
            while True:
                page = client.scan(TableName=table, ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {}))
                items.extend(page["Items"])
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
        records, hot = {}, {}
        for item in items:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if not pk.startswith("d#"):
                continue
            (records if sk == "rec" else hot if sk == "hot" else {})[pk] = item
        out = []
        for pk in sorted(records):
            item = records[pk]
            record = json.loads(item["rec"]["S"])
            readings, last_heard = [], None
            h = hot.get(pk)
            if h is not None and h.get("inc", {}).get("N") == item["inc"]["N"]:
                if "lh" in h:
                    last_heard = int(h["lh"]["N"]) / 1000.0
                order = record.get("inverter_rcpns") or []
                for rcpn, state, sys_mode, at_ms in json.loads(h["rd"]["S"]) if "rd" in h else []:
                    readings.append({"rcpn": rcpn, "state": state, "sys_mode": sys_mode, "at": _iso_ms(at_ms)})
                readings.sort(key=lambda r: order.index(r["rcpn"]) if r["rcpn"] in order else len(order))
            record["last_heard_at"] = _iso_ms(last_heard * 1000) if last_heard is not None else None
            record["inverter_readings"] = readings
            system = next((r for r in readings if 0x7000 <= r["state"] <= 0x7FFF), readings[0] if readings else None)
            record["inverter_state"] = system["state"] if system else None
            record["sys_mode"] = system["sys_mode"] if system else None
            out.append(record)
        if remote_id is not None:
            return out[0] if out else None
        return out

    def metrics(self, settle=False):
        """{(name, labels): value} of the adapter's metrics. With `settle` on the lambda backend, as
        of the end of the invocations running now (a function writes its counters when an
        invocation ends, so what it did may show in the store before its counter does); the other
        backends count at once and ignore it."""
        if self.backend == "lambda":
            return self.lambda_metrics(settle)
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=10) as response:
            return parse_metrics(response.read().decode())

    def lambda_metrics(self, settle=False):
        """Lambda mode: the EMF lines every function instance printed, of every deployment so far
        (counters: their deltas summed; gauges: the newest value), in the shape of parse_metrics;
        with `settle`, once the invocations running at the call have ended."""
        from lambda_deployment import emf_samples
        running = [a for a in self.adapters if isinstance(a, LambdaAdapter) and not a.stopped]
        for adapter in running if settle else ():
            adapter.deployment.settle()
        documents = list(self._emf_retired)
        for adapter in running:
            documents.extend(adapter.deployment.emf())
        return emf_samples(documents)

    def lambda_violations(self):
        """Lambda mode: what bootstrap sent against the runtime API contract or docs/LAMBDA.md's
        answers (every lambda-mode Stack fails at its close when there is any)."""
        return [v for d in self.deployments for v in d.violations()]

    # ---- operator actions in Concerto, counting, the CLI ----

    def update_asset(self, asset_id, **fields):
        """Changes an asset by hand, as an operator does in Concerto's UI (concerto-sim
        PATCH /admin/assets/<id>: name, simulated, ratedPower, energyCapacity, acCoupled)."""
        status, body = http("PATCH", f"{self.concerto_url}/admin/assets/{asset_id}", fields)
        self.test.assertEqual(status, 200, body)
        return body

    def delete_asset(self, asset_id):
        status, body = http("DELETE", f"{self.concerto_url}/admin/assets/{asset_id}")
        self.test.assertEqual(status, 200, body)
        return body["deleted"]

    def telemetry_count(self, asset_id=None, metric_name=None):
        """How many points Concerto stores (for an asset / metric), without fetching them."""
        params = ["limit=1"]
        if asset_id is not None:
            params.append(f"assetId={asset_id}")
        if metric_name is not None:
            params.append(f"metric={metric_name}")
        return self.concerto_get("/admin/telemetry?" + "&".join(params))["count"]

    def cli(self, *args):
        """Runs `pwrcell-adapter ARGS`; returns the CompletedProcess (text output)."""
        return self.keep_output("cli", subprocess.run([ADAPTER, *args], capture_output=True, text=True, timeout=60))

    def db_path(self):
        return os.path.join(self.dir, "adapter.db") if "storage.path" not in self.extra_config \
            else self.extra_config["storage.path"]


def _iso_ms(ms):
    """Unix milliseconds -> ISO 8601 as the adapter writes it (common/time.cc FormatIso8601)."""
    import datetime
    t = datetime.datetime.fromtimestamp(int(ms) / 1000.0, datetime.timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    millis = int(ms) % 1000
    return text + (f".{millis:03d}" if millis else "") + "Z"


def render_toml(sections):
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        for key, value in keys.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


class LambdaAdapter:
    """Lambda mode's stand-in for the `serve` Process in Stack.adapter / Stack.adapters: one
    deployment of the functions. stop() stops the mappings (in-flight invocations finish) and the
    processes, as a stack update replacing the functions would; kill() SIGKILLs every bootstrap
    process at once (mid-invocation: Runtime.ExitError, and the event comes again: SQS after the
    visibility timeout, Kinesis from the checkpoint); log() is every instance's output."""

    def __init__(self, stack, deployment):
        self.stack = stack
        self.deployment = deployment
        self.stopped = False
        self.admin_url = self.ingest_url = None

    def log(self):
        return self.deployment.log()

    def running(self):
        return not self.stopped

    def _retire(self):
        self.stack._emf_retired.extend(self.deployment.emf())
        self.stopped = True

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """0, or 1 when bootstrap broke the contract."""
        if not self.stopped:
            self.deployment.stop()
            self._retire()
        return 1 if self.deployment.violations() else 0

    def kill(self):
        if not self.stopped:
            self.deployment.kill()
            self._retire()
        return -signal.SIGKILL


class Poller(threading.Thread):
    """Calls fn every `interval` seconds in the background until stopped (for watching a run)."""

    def __init__(self, fn, interval=0.5):
        super().__init__(daemon=True)
        self.fn, self.interval, self._stop_event = fn, interval, threading.Event()

    def run(self):
        while not self._stop_event.wait(self.interval):
            try:
                self.fn()
            except Exception:  # noqa: BLE001 - a watcher must not die on one failed poll
                pass

    def stop(self):
        self._stop_event.set()
        self.join(5)
