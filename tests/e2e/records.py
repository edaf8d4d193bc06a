"""EnergyRecordSet helpers for the end-to-end tests, independent of the adapter's code: records are
encoded and decoded with `protoc` against contracts/energy_record_set.proto, and the points a
record must become are computed here from SPEC section 5 and the units and signs of
contracts/concerto.graphql, so that a test compares the adapter with the contract, not with itself.

    records = read_file_sink(path)                       # fleet-sim --sink file:PATH
    decoded = decode_record(records[0])                  # {"inverterId": [...], "energyRecord": [...]}
    blob = encode_record('inverterId: "00AB" energyRecord { currentTimestamp: 1.5 }')
    roles = concerto_roles(stack, system_id)             # Concerto asset ids of one system
    want = expected_points(decoded, roles)               # {(assetId, metric, timestamp): Expected}
"""

import datetime
import os
import re
import subprocess
from collections import namedtuple

from harness import SOURCE_DIR, http, wait_for

CONTRACTS_DIR = os.path.join(SOURCE_DIR, "contracts")
PROTO = os.path.join(CONTRACTS_DIR, "energy_record_set.proto")
MESSAGE = "pwrcell.ces.v1.EnergyRecordSet"

W_PER_KW = 1000.0
WS_PER_KWH = 3_600_000.0


# ---- wire format ----

def read_file_sink(path):
    """The records of a fleet-sim file sink: 4-byte big-endian length + serialized EnergyRecordSet."""
    with open(path, "rb") as f:
        data = f.read()
    records, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        records.append(data[i + 4:i + 4 + n])
        i += 4 + n
    if i != len(data):
        raise ValueError(f"{path}: truncated record at byte {i}")
    return records


def _protoc(mode, payload):
    result = subprocess.run(["protoc", f"--{mode}={MESSAGE}", f"-I{CONTRACTS_DIR}", PROTO], input=payload,
                            capture_output=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"protoc --{mode} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def encode_record(textproto):
    """Protobuf text format -> serialized EnergyRecordSet (protoc --encode)."""
    return _protoc("encode", textproto.encode())


def _parse_text(tokens, pos, end_token=None):
    """Protobuf text format tokens -> {field: [values]} (every field a list; messages are dicts)."""
    message = {}
    while pos < len(tokens):
        token = tokens[pos]
        if token == end_token:
            return message, pos + 1
        name = token.rstrip(":")
        if token.endswith(":"):
            raw = tokens[pos + 1]
            pos += 2
            if raw.startswith('"'):
                value = bytes(raw[1:-1], "utf-8").decode("unicode_escape")
            else:
                try:
                    value = int(raw)
                except ValueError:
                    try:
                        value = float(raw)
                    except ValueError:
                        value = raw  # an enum name
            message.setdefault(name, []).append(value)
        else:
            if tokens[pos + 1] != "{":
                raise ValueError(f"unexpected token {tokens[pos + 1]!r} after {token!r}")
            child, pos = _parse_text(tokens, pos + 2, "}")
            message.setdefault(name, []).append(child)
    if end_token is not None:
        raise ValueError("unterminated message")
    return message, pos


def parse_textproto(text):
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{}]|[^\s{}]+', text)
    message, _ = _parse_text(tokens, 0)
    return message


def decode_record(blob):
    """Serialized EnergyRecordSet -> dict (protoc --decode, parsed)."""
    return parse_textproto(_protoc("decode", blob).decode())


def one(message, field, default=0):
    """A singular field of a parsed message (proto3: absent = default)."""
    values = message.get(field)
    return values[0] if values else default


def enum_values(enum_name):
    """{NAME: number} of an enum of the contract's .proto."""
    with open(PROTO) as f:
        text = f.read()
    body = re.search(r"enum\s+" + enum_name + r"\s*\{(.*?)\}", text, re.S).group(1)
    return {name: int(number) for name, number in re.findall(r"(\w+)\s*=\s*(\d+)\s*;", body)}


def enum_number(enum_name, value):
    return value if isinstance(value, int) else enum_values(enum_name)[value]


# ---- time ----

def iso(seconds):
    """Unix seconds -> the DateTime text concerto-sim answers (UTC, 'Z', fraction only when there is one)."""
    whole = int(seconds // 1)
    micros = round((seconds - whole) * 1_000_000)
    value = datetime.datetime.fromtimestamp(whole, tz=datetime.timezone.utc).replace(microsecond=micros)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if micros:
        text += ("." + f"{micros:06d}").rstrip("0")
    return text + "Z"


def parse_iso(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---- Concerto assets of one system, from concerto-sim (not from the adapter) ----

Roles = namedtuple("Roles", "system inverter site_meter batteries photovoltaics site")


def concerto_roles(stack, system_id):
    """The Concerto ids of one system's assets, found by remoteId and parent links in concerto-sim:
    SYSTEM (remoteId = systemId), its INVERTER and SITE_METER children, the inverter's BATTERY and
    PHOTOVOLTAIC children ({remoteId: id}), and the system's site id."""
    assets = stack.assets()
    by_id = {a["id"]: a for a in assets}
    (system,) = [a for a in assets if a["assetType"] == "SYSTEM" and a["remoteId"] == system_id]
    children = [by_id[c] for c in system["childIds"]]
    inverters = [a for a in children if a["assetType"] == "INVERTER"]
    meters = [a for a in children if a["assetType"] == "SITE_METER"]
    inverter = inverters[0] if inverters else None
    under = [by_id[c] for c in inverter["childIds"]] if inverter else []
    return Roles(system=system["id"], inverter=inverter["id"] if inverter else None,
                 site_meter=meters[0]["id"] if meters else None,
                 batteries={a["remoteId"]: a["id"] for a in under if a["assetType"] == "BATTERY"},
                 photovoltaics={a["remoteId"]: a["id"] for a in under if a["assetType"] == "PHOTOVOLTAIC"},
                 site=system["siteId"])


# ---- SPEC section 5, written out independently ----

# value: the number Concerto must store; exact: True when it derives from integers only (then it must
# be equal to the last bit), False when from a float32 field (then equal to float32 precision).
Expected = namedtuple("Expected", "value exact")


def _real_power_kw(channel):
    precise = one(channel, "realPower_Wf", 0.0)
    if precise not in (0, 0.0):
        return Expected(float(precise) / W_PER_KW, False)
    return Expected(int(one(channel, "realPower_W")) / W_PER_KW, True)


def _float(channel, field):
    return Expected(float(one(channel, field, 0.0)), False)


def _kwh(channel, field):
    return Expected(int(one(channel, field)) / WS_PER_KWH, True)


def expected_points(record_set, roles):
    """{(assetId, metric, timestamp text): Expected} for one decoded EnergyRecordSet of the system
    whose Concerto assets are `roles`, and the number of channels that have no asset (unmapped)."""
    points, unmapped = {}, 0
    for record in record_set.get("energyRecord", []):
        ts = iso(float(one(record, "currentTimestamp")))

        def put(asset, metrics):
            for metric_name, expected in metrics.items():
                points[(asset, metric_name, ts)] = expected

        for channel in record.get("channel", []):
            kind = one(channel, "channelType", "UNKNOWN_CHANNEL")
            device = one(channel, "deviceId", "")
            if kind == "NET" and roles.site_meter:
                put(roles.site_meter, {"REAL_POWER": _real_power_kw(channel),
                                       "ENERGY_IMPORTED": _kwh(channel, "importedEnergy_Ws"),
                                       "ENERGY_EXPORTED": _kwh(channel, "exportedEnergy_Ws"),
                                       "VOLTAGE": _float(channel, "voltage_V")})
            elif kind == "INVERTER_OUTPUT":
                put(roles.inverter or roles.system,
                    {"REAL_POWER": _real_power_kw(channel),
                     "REACTIVE_POWER": Expected(int(one(channel, "reactivePower_VAR")) / W_PER_KW, True),
                     "ENERGY_IMPORTED": _kwh(channel, "importedEnergy_Ws"),
                     "ENERGY_EXPORTED": _kwh(channel, "exportedEnergy_Ws"),
                     "SOURCE_MAX_POWER": Expected(float(one(channel, "realPowerSourceMax_W", 0.0)) / W_PER_KW, False),
                     "SINK_MAX_POWER": Expected(float(one(channel, "realPowerSinkMax_W", 0.0)) / W_PER_KW, False)})
            elif kind in ("STORAGE", "STORAGE_AC") and device in roles.batteries:
                put(roles.batteries[device], {"REAL_POWER": _real_power_kw(channel),
                                              "STATE_OF_CHARGE": _float(channel, "soc"),
                                              "STATE_OF_HEALTH": _float(channel, "soh"),
                                              "VOLTAGE": _float(channel, "voltage_V"),
                                              "ENERGY_IMPORTED": _kwh(channel, "importedEnergy_Ws"),
                                              "ENERGY_EXPORTED": _kwh(channel, "exportedEnergy_Ws")})
            elif kind in ("GENERATION", "GENERATION_AC") and device in roles.photovoltaics:
                put(roles.photovoltaics[device], {"REAL_POWER": _real_power_kw(channel),
                                                  "VOLTAGE": _float(channel, "voltage_V"),
                                                  "ENERGY_EXPORTED": _kwh(channel, "exportedEnergy_Ws")})
            else:
                unmapped += 1
        put(roles.system, {
            "INVERTER_STATE": Expected(float(one(record, "inverterState")), True),
            "SYSTEM_MODE": Expected(float(enum_number("SystemMode", one(record, "sysMode", 0))), True)})
    return points, unmapped


def value_matches(actual, expected):
    if expected.exact:
        return actual == expected.value
    # A float32 on the wire carries ~7 significant digits; a unit (x1000) or sign slip is far outside.
    return abs(actual - expected.value) <= 1e-6 * max(1.0, abs(expected.value))


def wait_for_points(test, stack, expected, timeout=60.0):
    """Waits until concerto-sim holds as many points as expected (or `timeout`), then compares."""
    try:
        wait_for(lambda: len(stack.telemetry()) >= len(expected), f"{len(expected)} points in Concerto", timeout)
    except AssertionError:
        pass  # compare_points says which are missing
    compare_points(test, stack.telemetry(), expected)


def compare_points(test, stored, expected):
    """Asserts that `stored` (concerto-sim /admin/telemetry points) are exactly the `expected` ones:
    same (asset, metric, timestamp) keys, each once, with matching values."""
    seen = {}
    for p in stored:
        key = (p["assetId"], p["metric"], p["timestamp"])
        test.assertNotIn(key, seen, f"point stored twice: {key}")
        seen[key] = p["value"]
    missing = sorted(set(expected) - set(seen))
    extra = sorted(set(seen) - set(expected))
    test.assertEqual(missing[:10], [], f"{len(missing)} of {len(expected)} expected points missing (first 10)")
    test.assertEqual(extra[:10], [], f"{len(extra)} unexpected points (first 10)")
    wrong = [(key, seen[key], expected[key].value) for key in sorted(expected)
             if not value_matches(seen[key], expected[key])]
    test.assertEqual(wrong[:10], [], f"{len(wrong)} points with wrong values (first 10): (key, stored, expected)")


def post_record(stack, blob):
    """POSTs one serialized EnergyRecordSet to the adapter's ingest endpoint (application/x-protobuf);
    on the AWS and Lambda backends (PWRCELL_E2E_BACKEND=aws|lambda) puts it on the Kinesis stream instead."""
    if getattr(stack, "backend", "embedded") in ("aws", "lambda"):
        stack.put_kinesis(blob)
        return {"accepted": 1}
    status, body = http("POST", stack.ingest_url, blob, headers={"Content-Type": "application/x-protobuf"})
    stack.test.assertEqual(status, 200, body)
    stack.test.assertEqual(body.get("accepted"), 1, body)
    return body


# Which metrics each asset of a system gets for every record (SPEC section 5), from the Concerto
# assets alone. AC-coupled systems have no PHOTOVOLTAIC asset: their GENERATION_AC channel is unmapped.
SITE_METER_METRICS = ("REAL_POWER", "ENERGY_IMPORTED", "ENERGY_EXPORTED", "VOLTAGE")
INVERTER_METRICS = ("REAL_POWER", "REACTIVE_POWER", "ENERGY_IMPORTED", "ENERGY_EXPORTED", "SOURCE_MAX_POWER",
                    "SINK_MAX_POWER")
BATTERY_METRICS = ("REAL_POWER", "STATE_OF_CHARGE", "STATE_OF_HEALTH", "VOLTAGE", "ENERGY_IMPORTED",
                   "ENERGY_EXPORTED")
PHOTOVOLTAIC_METRICS = ("REAL_POWER", "VOLTAGE", "ENERGY_EXPORTED")
SYSTEM_METRICS = ("INVERTER_STATE", "SYSTEM_MODE")


def series_of(roles):
    """{(assetId, metric)} that every record of a fleet-sim system (all components in Concerto) yields."""
    series = {(roles.system, m) for m in SYSTEM_METRICS}
    series |= {(roles.inverter, m) for m in INVERTER_METRICS}
    if roles.site_meter:
        series |= {(roles.site_meter, m) for m in SITE_METER_METRICS}
    for asset in roles.batteries.values():
        series |= {(asset, m) for m in BATTERY_METRICS}
    for asset in roles.photovoltaics.values():
        series |= {(asset, m) for m in PHOTOVOLTAIC_METRICS}
    return series
