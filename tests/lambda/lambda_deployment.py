"""The Lambda deployment of docs/LAMBDA.md, run locally: every function of the template as
`bootstrap` processes under the runtime API stand-in (lambda_runtime.py), wired to moto's Kinesis
stream, SQS queues and to schedules by the event source mappings of event_sources.py.

FUNCTIONS is the one table of functions and mappings (it mirrors docs/LAMBDA.md "Functions,
handlers and event sources" and the template's mapping settings). `variables(config)` is the
environment the template gives every function (docs/LAMBDA.md "Configuration of a function"),
computed from the same configuration sections the e2e harness writes to deployment.toml for
`serve`; there is no deployment.toml on Lambda (PWRCELL_CONFIG unset).

Used by tests/e2e/harness.py in PWRCELL_E2E_BACKEND=lambda mode and by the lambda.* tests.
"""

import os
import sys
import threading
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from event_sources import KinesisMapping, Schedule, SqsMapping  # noqa: E402
from lambda_runtime import ContractViolation, Function, emf_samples  # noqa: E402


@dataclass(frozen=True)
class FunctionSpec:
    name: str                  # the template's logical id (also the function's name here)
    handler: str               # _HANDLER
    source: str                # "kinesis" | "sqs" | "schedule"
    resource: str = ""         # [aws] key of the stream / queue
    batch_size: int = 10
    concurrency_key: str = ""  # [lambda] key of its reserved concurrency (= SQS MaximumConcurrency)
    schedule_key: str = ""     # the configuration key of its schedule's interval (seconds)
    timeout_s: float = 60.0    # the function's Timeout (template: 60 s; the gateways' = the visibility timeout)
    max_retries: int = -1      # Kinesis MaximumRetryAttempts (-1: none; then the on-failure destination)
    max_record_age_s: int = -1  # Kinesis MaximumRecordAgeInSeconds


FUNCTIONS = (
    FunctionSpec("TelemetryProcessorFunction", "telemetry_processor", "kinesis", "telemetry_stream",
                 batch_size=100, timeout_s=60.0, max_retries=-1, max_record_age_s=86400),
    FunctionSpec("ConcertoGatewayFunction", "concerto_gateway", "sqs", "concerto_queue",
                 concurrency_key="lambda.concerto_control_concurrency"),
    FunctionSpec("ConcertoTelemetryGatewayFunction", "concerto_gateway", "sqs", "concerto_telemetry_queue",
                 concurrency_key="lambda.concerto_telemetry_concurrency"),
    FunctionSpec("PwrcellGatewayFunction", "pwrcell_gateway", "sqs", "ces_queue", concurrency_key="lambda.ces_concurrency"),
    FunctionSpec("RegistrarPollerFunction", "registrar_poller", "schedule", schedule_key="schedule.registrar_poll_s"),
    FunctionSpec("CesStatePollerFunction", "ces_state_poller", "schedule", schedule_key="schedule.ces_state_poll_s"),
    FunctionSpec("LivenessSweepFunction", "liveness_sweep", "schedule", schedule_key="schedule.liveness_sweep_s"),
    # EventBridge "every minute" in the template; the e2e runs it at simulated.record_interval_s.
    FunctionSpec("SimulatedTelemetryFunction", "simulated_telemetry", "schedule",
                 schedule_key="simulated.record_interval_s"),
)

DEFAULT_CONCURRENCY = 2  # docs/LAMBDA.md: each [lambda] concurrency defaults to 2 (SQS's minimum)

# Sections the template cannot set (docs/LAMBDA.md "Keys the template cannot take"): not passed.
NOT_ON_LAMBDA = ("backend", "storage", "secrets", "aws", "telemetry", "admin")
NOT_ON_LAMBDA_KEYS = ("concerto.workers", "ces.workers", "concerto.credentials_secret", "ces.credentials_secret")
SEED_NAMES = {"adapter.name": "ADAPTER_NAME", "adapter.auto_commissioning": "AUTO_COMMISSIONING",
              "concerto.root_url": "ConcertoRootUrl", "ces.root_url": "CesRootUrl"}
RESOURCE_KEYS = ("device_table", "coordination_table", "concerto_queue", "concerto_telemetry_queue", "ces_queue",
                 "telemetry_stream")


def env_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def variables(sections, aws_names, secret_arns):
    """The template's environment for every function. `sections`: {section: {key: value}} (the
    configuration the harness would write to deployment.toml); `aws_names`: the [aws] resource
    names; `secret_arns`: {"ConcertoCredentials": arn, "CesCredentials": arn}."""
    env = {"ConcertoCredentials": secret_arns["ConcertoCredentials"], "CesCredentials": secret_arns["CesCredentials"]}
    for key in RESOURCE_KEYS:
        env["PWRCELL_AWS_" + key.upper()] = aws_names[key]
    for section, keys in sections.items():
        if section in NOT_ON_LAMBDA:
            continue
        for key, value in keys.items():
            dotted = f"{section}.{key}"
            if dotted in NOT_ON_LAMBDA_KEYS:
                continue
            env[SEED_NAMES.get(dotted, f"PWRCELL_{section.upper()}_{key.upper()}")] = env_value(value)
    return env


def setting(sections, dotted, default=None):
    section, key = dotted.split(".", 1)
    return sections.get(section, {}).get(key, default)


class LambdaDeployment:
    """Every function of FUNCTIONS (or `only` those names) with its mapping, started by start()."""

    def __init__(self, bootstrap, workdir, sections, aws_names, secret_arns, aws_env, boto3_client, region="us-east-1",
                 only=None, function_timeouts=None, mapping_overrides=None, start_sources=True, function_env=None):
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.sections = sections
        self.aws_names = aws_names
        self.env = variables(sections, aws_names, secret_arns)
        self.aws_env = aws_env
        self.boto3_client = boto3_client
        self.region = region
        self.only = only
        self.function_timeouts = function_timeouts or {}
        self.mapping_overrides = mapping_overrides or {}
        self.start_sources = start_sources
        self.function_env = function_env or {}   # {function name: {variable: value}} on top (tests)
        self.functions = {}
        self.mappings = {}
        self.lock = threading.Lock()

    def concurrency(self, spec):
        if not spec.concurrency_key:
            return 1
        return int(setting(self.sections, spec.concurrency_key, DEFAULT_CONCURRENCY))

    def configure_queues(self):
        """What the template sets on the gateway queues and `pwrcell-adapter aws setup` leaves at
        SQS's defaults (serve sets the visibility per receive): VisibilityTimeout =
        queues.visibility_timeout_s (VisibilityTimeoutSeconds)."""
        visibility = setting(self.sections, "queues.visibility_timeout_s")
        if visibility is None:
            return
        sqs = self.boto3_client("sqs")
        for spec in FUNCTIONS:
            if spec.source == "sqs":
                url = sqs.get_queue_url(QueueName=self.aws_names[spec.resource])["QueueUrl"]
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(int(visibility))})

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        if self.start_sources:
            self.configure_queues()
        for spec in FUNCTIONS:
            if self.only is not None and spec.name not in self.only:
                continue
            timeout_s = self.function_timeouts.get(spec.name, spec.timeout_s)
            if spec.source == "sqs" and spec.name not in self.function_timeouts:  # template: Timeout = visibility
                timeout_s = float(setting(self.sections, "queues.visibility_timeout_s", 30))
            function = Function(spec.name, spec.handler, self.bootstrap, self.workdir,
                                variables={**self.env, **self.function_env.get(spec.name, {})},
                                base_env=self.aws_env, concurrency=self.concurrency(spec), timeout_s=timeout_s,
                                region=self.region)
            self.functions[spec.name] = function
        if self.start_sources:
            for spec in FUNCTIONS:
                if spec.name in self.functions:
                    self.start_source(spec.name)
        return self

    def spec(self, name):
        return next(s for s in FUNCTIONS if s.name == name)

    def start_source(self, name):
        spec = self.spec(name)
        function = self.functions[name]
        overrides = self.mapping_overrides.get(name, {})
        if spec.source == "kinesis":
            mapping = KinesisMapping(function, self.boto3_client("kinesis"), self.aws_names[spec.resource],
                                     region=self.region, batch_size=overrides.get("batch_size", spec.batch_size),
                                     max_retries=overrides.get("max_retries", spec.max_retries),
                                     max_record_age_s=overrides.get("max_record_age_s", spec.max_record_age_s))
        elif spec.source == "sqs":
            mapping = SqsMapping(function, self.boto3_client("sqs"), self.aws_names[spec.resource], region=self.region,
                                 batch_size=overrides.get("batch_size", spec.batch_size),
                                 max_concurrency=self.concurrency(spec))
        else:
            interval = float(overrides.get("interval_s", setting(self.sections, spec.schedule_key, 60)))
            mapping = Schedule(function, interval, rule_name=name + "Schedule", region=self.region,
                               first_after_s=overrides.get("first_after_s", 0.0))
        self.mappings[name] = mapping.start()
        return mapping

    def function(self, name):
        return self.functions[name]

    def settle(self, timeout=15.0):
        """Every function's invocations in flight now end and their EMF lines are collected."""
        deadline = time.monotonic() + timeout
        for function in self.functions.values():
            function.settle(max(0.0, deadline - time.monotonic()))

    def emf(self):
        documents = []
        for function in self.functions.values():
            with function._lock:
                documents.extend(function.emf)
        return documents

    def violations(self):
        out = []
        for function in self.functions.values():
            out.extend(function.violations)
        for mapping in self.mappings.values():
            out.extend(mapping.contract)
        return out

    def log(self):
        """Every instance's log (bootstrap's stdout and stderr), function by function."""
        parts = []
        for function in self.functions.values():
            for instance in function.instances:
                try:
                    with open(instance.log_path, "r", encoding="utf-8", errors="replace") as f:
                        parts.append(f.read())
                except FileNotFoundError:
                    pass
        return "\n".join(parts)

    def stop(self):
        """Stops the mappings (in-flight invocations finish), then the functions' processes."""
        for mapping in self.mappings.values():
            mapping.stop_event.set()
        for mapping in self.mappings.values():
            mapping.stop()
        for function in self.functions.values():
            function.close()

    def kill(self):
        """SIGKILLs every bootstrap process now (mid-invocation or idle), then stops."""
        for mapping in self.mappings.values():
            mapping.stop_event.set()
        for function in self.functions.values():
            for instance in function.instances:
                instance.kill()
        self.stop()


__all__ = ["FUNCTIONS", "FunctionSpec", "LambdaDeployment", "ContractViolation", "emf_samples", "variables"]
