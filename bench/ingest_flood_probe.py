#!/usr/bin/env python3
"""The outside probe of issue 13 item 7, as a repeatable measurement: concurrent 5 MiB JSON bodies
of empty records ({"data": ""}, 12 bytes each: 436,905 of them fit) against `pwrcell-adapter
serve`'s ingest endpoint, and the process's resident memory before, at its peak and after.

Starts serve on free ports with a store in a temporary directory (Concerto and CES unreachable:
only ingest matters here), sends --concurrency bodies at once, --rounds times, then waits
--settle seconds and reads the resident set again (was the memory given back?). Prints one line
per round and a summary; exits non-zero when serve does not start or a request gets no answer.

    bench/ingest_flood_probe.py build/bin/pwrcell-adapter [--concurrency 8] [--rounds 3]
"""

import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

BODY_BYTES = 5 * 1024 * 1024


def empty_records_body(limit):
    head, tail, record = b'{"records":[', b"]}", b'{"data":""}'
    count = (limit - len(head) - len(tail) + 1) // (len(record) + 1)
    return head + b",".join([record] * count) + tail, count


def memory_kib(pid):
    """VmRSS and VmHWM (peak resident set since start) of `pid`, in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def start_serve(adapter, directory):
    with open(os.path.join(directory, "secrets.json"), "w") as f:
        f.write('{"ConcertoCredentials": {"email": "probe@example.com", "password": "probe"},'
                ' "CesCredentials": {"api_key": "probe"}}')
    os.chmod(os.path.join(directory, "secrets.json"), 0o600)
    config = os.path.join(directory, "deployment.toml")
    with open(config, "w") as f:
        f.write(f"""[concerto]
root_url = "http://127.0.0.1:9"
timeout_s = 1
[ces]
root_url = "http://127.0.0.1:9"
timeout_s = 1
[secrets]
path = "{directory}/secrets.json"
[storage]
path = "{directory}/adapter.db"
[telemetry]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
""")
    log_path = os.path.join(directory, "serve.log")
    log = open(log_path, "w")
    process = subprocess.Popen([adapter, "serve", "--config", config], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log_path) as f:
            found = re.search(r"ingest server listening on [0-9.]+:(\d+)", f.read())
        if found:
            return process, int(found.group(1)), log_path
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    with open(log_path) as f:
        sys.exit("serve did not start:\n" + f.read())


def post(port, body, results, index):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        connection.request("POST", "/v1/telemetry", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        results[index] = (response.status, len(answer), answer[:160])
        connection.close()
    except Exception as error:  # reported, and the run fails
        results[index] = (None, 0, repr(error).encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", help="the pwrcell-adapter binary")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before the last reading")
    args = parser.parse_args()

    body, count = empty_records_body(BODY_BYTES)
    with tempfile.TemporaryDirectory(prefix="pwrcell-flood-probe-") as directory:
        process, port, _ = start_serve(args.adapter, directory)
        try:
            time.sleep(1.0)
            rss_before, _ = memory_kib(process.pid)
            print(f"body: {len(body)} bytes, {count} empty records; {args.concurrency} at once, {args.rounds} rounds")
            print(f"serve RSS before: {rss_before / 1024:.1f} MiB")
            failed = False
            for round_number in range(1, args.rounds + 1):
                results = [None] * args.concurrency
                threads = [threading.Thread(target=post, args=(port, body, results, i)) for i in range(args.concurrency)]
                started = time.monotonic()
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                elapsed = time.monotonic() - started
                rss, peak = memory_kib(process.pid)
                statuses = sorted({r[0] for r in results}, key=str)
                sizes = sorted({r[1] for r in results})
                print(f"round {round_number}: statuses {statuses}, answer bytes {sizes}, {elapsed:.2f} s, "
                      f"RSS after {rss / 1024:.1f} MiB, peak so far {peak / 1024:.1f} MiB")
                print(f"  first answer: {results[0][2].decode(errors='replace')}")
                failed = failed or any(r[0] is None for r in results)
            time.sleep(args.settle)
            rss_after, peak = memory_kib(process.pid)
            print(f"serve RSS {args.settle:.0f} s after the last round: {rss_after / 1024:.1f} MiB "
                  f"(before {rss_before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB)")
            return 1 if failed else 0
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
