#!/usr/bin/env python3
"""Starts or stops the moto_server the AWS tests share (a CTest fixture).

  moto_fixture.py start STATE_DIR   start moto_server on a free 127.0.0.1 port, wait until it
                                    answers, write STATE_DIR/endpoint ("http://127.0.0.1:PORT")
                                    and STATE_DIR/pid; exits 0 once it is ready
  moto_fixture.py stop STATE_DIR    stop it (SIGTERM, then SIGKILL) and remove the files

moto is a stand-in for AWS: the tests create their own resources on it with unique names, so
tests running at once do not meet. The server's log is STATE_DIR/moto.log.
"""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(state_dir):
    os.makedirs(state_dir, exist_ok=True)
    stop(state_dir)
    port = free_port()
    log = open(os.path.join(state_dir, "moto.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            sys.exit(f"moto_server exited with {proc.returncode}; see {state_dir}/moto.log")
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit("moto_server did not answer within 60 s")
            time.sleep(0.1)
    with open(os.path.join(state_dir, "pid"), "w") as f:
        f.write(str(proc.pid))
    with open(os.path.join(state_dir, "endpoint"), "w") as f:
        f.write(endpoint)
    print(f"moto_server {endpoint} (pid {proc.pid})")


def stop(state_dir):
    pid_file = os.path.join(state_dir, "pid")
    try:
        pid = int(open(pid_file).read())
    except (OSError, ValueError):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for name in ("pid", "endpoint"):
        try:
            os.remove(os.path.join(state_dir, name))
        except OSError:
            pass


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    (start if sys.argv[1] == "start" else stop)(sys.argv[2])
