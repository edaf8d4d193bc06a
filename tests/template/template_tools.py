"""What the template tests share: the template, its SAM translation (offline), and what
docs/LAMBDA.md and the C++ sources say it must contain.

The expectations are read from their sources where they have one, so that a change there shows up
here as a failure instead of a stale copy:
  - functions and their `_HANDLER`s, environment variable names, parameter names and the
    deployment.toml key of each parameter: docs/LAMBDA.md's tables;
  - parameter defaults: deployment_example.toml (a unit test keeps it equal to the C++ defaults);
  - the DynamoDB schema: the constants of src/adapters/aws/dynamodb_*.
What each function may do (its IAM) is derived from the code by hand and written out in
EXPECTED_* below, with the reason next to each entry.
"""

import copy
import os
import re
import tomllib

SOURCE_DIR = os.environ.get("PWRCELL_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TEMPLATE = os.path.join(SOURCE_DIR, "template.yml")
LAMBDA_DOC = os.path.join(SOURCE_DIR, "docs", "LAMBDA.md")
EXAMPLE_CONFIG = os.path.join(SOURCE_DIR, "deployment_example.toml")
REGION = "us-east-1"

BASIC_EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


class StubPolicyLoader:
    """ManagedPolicyLoader without IAM calls: SAM only asks it for a managed policy named by
    name in a function's Policies (this template names none; every function has its own Role)."""

    def load(self):
        return {"AWSLambdaBasicExecutionRole": BASIC_EXECUTION_POLICY}


def load_template():
    from samtranslator.yaml_helper import yaml_parse
    with open(TEMPLATE, encoding="utf-8") as f:
        return yaml_parse(f.read())


def translate(template=None, parameter_values=None, code_uri="s3://pwrcell-code/bootstrap.zip"):
    """The CloudFormation template SAM makes of template.yml. CodeUri is a local directory
    (build-lambda/package/) that `sam deploy` / `sam package` uploads and replaces with its S3
    location before the transform runs; the translator refuses anything but s3://, so the tests
    do the same replacement."""
    from samtranslator.translator.transform import transform
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    template = copy.deepcopy(template if template is not None else load_template())
    template["Globals"]["Function"]["CodeUri"] = code_uri
    return transform(template, dict(parameter_values or {}), StubPolicyLoader())


# --- docs/LAMBDA.md ---------------------------------------------------------------------------

def _doc_tables():
    """The markdown tables of docs/LAMBDA.md: {header tuple: [row cells]}."""
    with open(LAMBDA_DOC, encoding="utf-8") as f:
        lines = f.read().splitlines()
    tables, current, header = {}, None, None
    for line in lines:
        if not line.startswith("|"):
            current, header = None, None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = tuple(cells)
            current = tables.setdefault(header, [])
        elif all(set(c) <= set("-: ") for c in cells):
            continue
        else:
            current.append(cells)
    return tables


def _ticked(cell):
    return re.findall(r"`([^`]+)`", cell)


def _table_starting(header0):
    for header, rows in _doc_tables().items():
        if header[0].startswith(header0):
            return rows
    raise AssertionError(f"docs/LAMBDA.md has no table whose first column is '{header0}'")


def doc_functions():
    """{logical id: _HANDLER} from the table of functions."""
    out = {}
    for row in _table_starting("function"):
        out[_ticked(row[0])[0]] = _ticked(row[1])[0]
    return out


def doc_environment():
    """The environment variable names of "Configuration of a function"."""
    names = []
    for row in _table_starting("variable"):
        names.extend(_ticked(row[0]))
    return names


def doc_parameters():
    """[(parameter, deployment.toml key)] of "Template parameters", paired by position."""
    pairs = []
    for row in _table_starting("parameter"):
        params, keys = _ticked(row[0]), _ticked(row[1])
        assert len(params) == len(keys), f"docs/LAMBDA.md parameter row {row}: {params} vs {keys}"
        pairs.extend(zip(params, keys))
    return pairs




def config_env_name(key):
    """The generic environment variable of a deployment.toml key (config.cc: PWRCELL_<S>_<K>)."""
    section, name = key.split(".")
    return f"PWRCELL_{section.upper()}_{name.upper()}"


def expected_environment():
    """Every variable a function must have: LAMBDA.md's table plus the generic
    name of every parameter's key that the table does not cover otherwise (a parameter nobody
    reads would be useless), except the secret names, which reach the functions as the secrets'
    ARNs (ConcertoCredentials / CesCredentials)."""
    names = []
    for name in doc_environment():
        names.append(name)
    aliases = {"adapter.name": "ADAPTER_NAME", "adapter.auto_commissioning": "AUTO_COMMISSIONING",
               "concerto.root_url": "ConcertoRootUrl", "ces.root_url": "CesRootUrl",
               "concerto.credentials_secret": "ConcertoCredentials",
               "ces.credentials_secret": "CesCredentials"}
    for _, key in doc_parameters():
        name = aliases.get(key, config_env_name(key))
        if name not in names:
            names.append(name)
    return names


def example_config():
    with open(EXAMPLE_CONFIG, "rb") as f:
        return tomllib.load(f)


def example_value(key):
    section, name = key.split(".")
    return example_config()[section][name]


# --- the C++ sources --------------------------------------------------------------------------

def _source(path):
    with open(os.path.join(SOURCE_DIR, path), encoding="utf-8") as f:
        return f.read()


def device_listing_index():
    m = re.search(r'kListingIndex\s*=\s*"([^"]+)"', _source("src/adapters/aws/dynamodb_device_store.h"))
    assert m, "kListingIndex not found in dynamodb_device_store.h"
    return m.group(1)


def coordination_key_attributes():
    text = _source("src/adapters/aws/dynamodb_coordination.cc")
    kind = re.search(r'kKindAttribute\[\]\s*=\s*"([^"]+)"', text)
    key = re.search(r'kKeyAttribute\[\]\s*=\s*"([^"]+)"', text)
    assert kind and key, "kKindAttribute / kKeyAttribute not found in dynamodb_coordination.cc"
    return kind.group(1), key.group(1)


# DynamoDbDeviceStore::CreateTable (the listing index's name comes from the header, above).
DEVICE_TABLE = {
    "attributes": {"pk": "S", "sk": "S", "lp": "S", "rid": "S"},
    "key": {"pk": "HASH", "sk": "RANGE"},
    "index_key": {"lp": "HASH", "rid": "RANGE"},
    "index_projection": ("INCLUDE", ["ver", "sim", "rs", "cs"]),
}

# --- what the template must wire -------------------------------------------------------------

QUEUES = {  # logical id -> (name suffix after the stack name, its DLQ's logical id)
    "ConcertoQueue": ("concerto", "ConcertoDeadLetterQueue"),
    "ConcertoTelemetryQueue": ("concerto-telemetry", "ConcertoTelemetryDeadLetterQueue"),
    "CesQueue": ("ces", "CesDeadLetterQueue"),
}

SQS_GATEWAYS = {  # function -> (queue it consumes, its concurrency parameter)
    "ConcertoGatewayFunction": ("ConcertoQueue", "ConcertoGatewayConcurrency"),
    "ConcertoTelemetryGatewayFunction": ("ConcertoTelemetryQueue", "ConcertoTelemetryGatewayConcurrency"),
    "PwrcellGatewayFunction": ("CesQueue", "PwrcellGatewayConcurrency"),
}

SCHEDULED = {  # function -> its interval parameter (None: every minute)
    "RegistrarPollerFunction": "RegistrarPollSeconds",
    "CesStatePollerFunction": "CesStatePollSeconds",
    "LivenessSweepFunction": "LivenessSweepSeconds",
    "SimulatedTelemetryFunction": None,
}

# The queues each function sends to (sqs:SendMessage), from src/processes/*.cc and the handlers
# of src/runtime/lambda/functions.cc:
#   telemetry_processor -> concerto_telemetry_queue (push_telemetry), and the Kinesis mapping's
#     on-failure destination;
#   concerto_gateway runs the registrar in-process -> ces_queue (get_metadata) and, through the
#     device metadata processor's commissioning plan, concerto_queue (commission); dead-letters to
#     its own queue's DLQ;
#   pwrcell_gateway runs the device metadata processor (commission) and the CES state processor
#     (update_remote_state) -> concerto_queue; dead-letters to the CES DLQ;
#   registrar_poller -> concerto_queue (list_assets); ces_state_poller -> ces_queue (get_status);
#   liveness_sweep -> concerto_queue (update_remote_state); simulated_telemetry runs the telemetry
#     processor -> concerto_telemetry_queue.
EXPECTED_SENDS = {
    "TelemetryProcessorFunction": {"ConcertoTelemetryQueue", "TelemetryFailureQueue"},
    "ConcertoGatewayFunction": {"ConcertoQueue", "CesQueue", "ConcertoDeadLetterQueue"},
    "ConcertoTelemetryGatewayFunction": {"ConcertoTelemetryDeadLetterQueue"},
    "PwrcellGatewayFunction": {"ConcertoQueue", "CesDeadLetterQueue"},
    "RegistrarPollerFunction": {"ConcertoQueue"},
    "CesStatePollerFunction": {"CesQueue"},
    "LivenessSweepFunction": {"ConcertoQueue"},
    "SimulatedTelemetryFunction": {"ConcertoTelemetryQueue"},
}

# Secrets Manager: the Concerto client reads its credentials and writes the fresh token back; the
# CES client only reads.
EXPECTED_SECRETS = {
    "ConcertoGatewayFunction": {("secretsmanager:GetSecretValue", "ConcertoCredentialsSecret"),
                                ("secretsmanager:PutSecretValue", "ConcertoCredentialsSecret")},
    "ConcertoTelemetryGatewayFunction": {("secretsmanager:GetSecretValue", "ConcertoCredentialsSecret"),
                                         ("secretsmanager:PutSecretValue", "ConcertoCredentialsSecret")},
    "PwrcellGatewayFunction": {("secretsmanager:GetSecretValue", "CesCredentialsSecret")},
}

_DYNAMODB_OPERATIONS = ("DescribeTable", "GetItem", "PutItem", "DeleteItem", "UpdateItem", "Query", "Scan",
                        "BatchGetItem", "BatchWriteItem", "TransactWriteItems", "TransactGetItems")


def dynamodb_operations(path):
    """The DynamoDB operations an adapter's source calls (quoted operation names; CreateTable is
    `aws setup`'s, not a function's)."""
    names = set(re.findall(r'"(' + "|".join(_DYNAMODB_OPERATIONS) + r')"', _source(path)))
    assert "DescribeTable" in names, f"{path}: no DescribeTable call found"
    return names


# Every function opens the whole store at its first invocation (serve::Store::Open): both tables
# (their adapters' calls, read from their sources; the device store's queries of the listing
# index need Query on table/<name>/index/*) and the three queues with their DLQs (sqs_queue.h:
# Open resolves the queue and its DLQ).
ALL_QUEUES = ["ConcertoQueue", "ConcertoDeadLetterQueue", "ConcertoTelemetryQueue",
              "ConcertoTelemetryDeadLetterQueue", "CesQueue", "CesDeadLetterQueue"]


def expected_everywhere():
    device = dynamodb_operations("src/adapters/aws/dynamodb_device_store.cc")
    coordination = dynamodb_operations("src/adapters/aws/dynamodb_coordination.cc")
    return ({(f"dynamodb:{a}", "DeviceTable") for a in device}
            | {("dynamodb:Query", "DeviceTable/index")}
            | {(f"dynamodb:{a}", "CoordinationTable") for a in coordination}
            | {(a, q) for a in ("sqs:GetQueueUrl", "sqs:GetQueueAttributes") for q in ALL_QUEUES})


KINESIS_READ = ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary", "kinesis:ListShards"]
SQS_CONSUME = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
               "sqs:GetQueueAttributes"]


def rate_seconds(expression):
    """Seconds of an EventBridge rate expression ("rate(5 minutes)" -> 300)."""
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    assert m, f"not a rate expression: {expression!r}"
    n, unit = int(m.group(1)), m.group(2)
    assert (n == 1) == (not unit.endswith("s")), f"EventBridge wants singular units for 1 only: {expression!r}"
    return n * {"minute": 60, "hour": 3600, "day": 86400}[unit.rstrip("s")]
