#!/usr/bin/env python3
"""A tiny custom runtime for testing the harness itself (test_lambda_runtime.py): it speaks the
Lambda runtime API as bootstrap does and misbehaves on demand.

Direct events (a JSON object):
  {"echo": X}             answers {"echo": X, "env": {...}, "headers": {...}}
  {"fail": "message"}     POSTs /error {"errorMessage": message, "errorType": "Fake.Failure"}
  {"exit": N}             exits with status N mid-invocation (no answer)
  {"sleep": S, ...}       sleeps S seconds first
  {"not_json": true}      answers a body that is not JSON
  {"no_error_header": 1}  POSTs /error without Lambda-Runtime-Function-Error-Type
Event source events ("Records", or a scheduled event): each record's payload (Kinesis data, SQS
body) is "ok:<id>", "poison" (skipped), "transient:<id>" (fails the first time: reported in
batchItemFailures), "boom:<id>" (the whole invocation errors, every time), "crash:<id>" (the
process exits the first time, before handling any record of the batch). Handled records are appended to $FAKE_STATE_DIR/processed; SQS
message attributes to $FAKE_STATE_DIR/attributes. Scheduled events answer
{"handler": $_HANDLER, "ok": true} and are appended to $FAKE_STATE_DIR/scheduled.
Environment: FAKE_INIT_ERROR=1 posts /init/error and exits 1; FAKE_INIT_SLEEP=S sleeps first;
FAKE_TICKER=1 starts a thread appending a line to $FAKE_STATE_DIR/ticks every 20 ms.
After each invocation one EMF line: pwrcell_fake_records_total{handler} and a gauge.
"""

import base64
import json
import os
import sys
import time
import urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
STATE = os.environ.get("FAKE_STATE_DIR", "")
HANDLER = os.environ.get("_HANDLER", "")


def post(path, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(API + path, data=data, method="POST", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


def error(request_id, message, error_type="Fake.Failure", header=True):
    post(f"/invocation/{request_id}/error", {"errorMessage": message, "errorType": error_type, "stackTrace": []},
         {"Lambda-Runtime-Function-Error-Type": error_type} if header else {})


def seen_before(marker):
    """True the second time a marker is asked about (across processes: a file per marker)."""
    path = os.path.join(STATE, "seen-" + marker.replace("/", "_"))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return False
    except FileExistsError:
        return True


def append(name, line):
    with open(os.path.join(STATE, name), "a") as f:
        f.write(line + "\n")


def handle_records(request_id, event):
    records = event["Records"]
    payloads = []
    for r in records:
        if r.get("eventSource") == "aws:kinesis":
            payloads.append((r["kinesis"]["sequenceNumber"], base64.b64decode(r["kinesis"]["data"]).decode()))
        else:
            payloads.append((r["messageId"], r["body"]))
            append("attributes", json.dumps({"body": r["body"], "messageAttributes": r["messageAttributes"],
                                             "attributes": r["attributes"]}))
    crash = next((p for _, p in payloads if p.startswith("crash:") and not seen_before(p)), None)
    if crash is not None:  # before anything is handled: the retried batch is new to the handler
        sys.stdout.flush()
        os._exit(3)
    if any(p.startswith("boom:") for _, p in payloads):
        error(request_id, "a boom record in the batch")
        return 0
    failures, handled = [], 0
    kinesis = records[0].get("eventSource") == "aws:kinesis"
    for ident, payload in payloads:
        if kinesis and failures:
            break  # Kinesis: nothing after the first failure
        if payload == "poison":
            continue
        kind, _, name = payload.partition(":")
        if kind == "transient" and not seen_before(payload):
            failures.append(ident)
            continue
        append("processed", payload)
        handled += 1
    post(f"/invocation/{request_id}/response", {"batchItemFailures": [{"itemIdentifier": i} for i in failures]})
    return handled


def main():
    if os.environ.get("FAKE_INIT_SLEEP"):
        time.sleep(float(os.environ["FAKE_INIT_SLEEP"]))
    if os.environ.get("FAKE_INIT_ERROR"):
        post("/init/error", {"errorMessage": "cannot initialise: FAKE_INIT_ERROR", "errorType": "Runtime.InitFake"},
             {"Lambda-Runtime-Function-Error-Type": "Runtime.InitFake"})
        sys.exit(1)
    if os.environ.get("FAKE_TICKER"):
        def tick():
            while True:
                append("ticks", str(time.time()))
                time.sleep(0.02)
        import threading
        threading.Thread(target=tick, daemon=True).start()
    invocations = 0
    while True:
        with urllib.request.urlopen(API + "/invocation/next", timeout=3600) as answer:
            headers = {k: v for k, v in answer.headers.items() if k.lower().startswith("lambda-runtime")}
            event = json.loads(answer.read())
        request_id = answer.headers["Lambda-Runtime-Aws-Request-Id"]
        invocations += 1
        handled = 1
        if "sleep" in event:
            time.sleep(event["sleep"])
        if "Records" in event:
            handled = handle_records(request_id, event)
        elif event.get("detail-type") == "Scheduled Event":
            append("scheduled", json.dumps(event))
            post(f"/invocation/{request_id}/response", {"handler": HANDLER, "ok": True})
        elif "fail" in event:
            error(request_id, event["fail"])
        elif "exit" in event:
            sys.stdout.flush()
            os._exit(event["exit"])
        elif event.get("not_json"):
            post(f"/invocation/{request_id}/response", b"this is not JSON {")
        elif event.get("no_error_header"):
            error(request_id, "no header", header=False)
        else:
            post(f"/invocation/{request_id}/response", {"echo": event.get("echo"), "headers": headers,
                                                        "env": dict(os.environ)})
        print(json.dumps({"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [
            {"Namespace": "pwrcell-adapter", "Dimensions": [["handler"]],
             "Metrics": [{"Name": "pwrcell_fake_records_total", "Unit": "Count"},
                         {"Name": "pwrcell_fake_invocations", "Unit": "None"}]}]},
            "handler": HANDLER, "pwrcell_fake_records_total": handled, "pwrcell_fake_invocations": invocations}),
            flush=True)


if __name__ == "__main__":
    main()
