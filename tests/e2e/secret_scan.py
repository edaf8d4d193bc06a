"""Looks for secret values in the logs of a test run (issue 13 item 5): every line of every log
file the programs of an end-to-end run wrote must be free of the passwords, API keys and tokens
the run used. A finding names the file, the line number and which secret it was, in a redacted
form: the secret itself is never printed (a CI log is a log too).

A secret is a string the run handed to the adapter or that the adapter obtained on its behalf
(the Concerto password, the access tokens concerto-sim issued, the CES API key, ingest access
keys, AWS secret keys). Values shorter than MIN_LENGTH are refused: a short value matches by
chance and a hit would mean nothing, so the tests use long random ones (harness.py)."""

import hashlib
import os

MIN_LENGTH = 16

# Keys of a secret's JSON whose values are not secret (ConcertoCredentials keeps the token's
# times beside it, concerto_client.h).
NOT_SECRET_KEYS = frozenset({"email", "token_expires_at", "token_issued_at"})


def redacted(value):
    """What a message may say of a secret: its length and a short digest, never a character of it."""
    return f"<{len(value)} chars, sha256 {hashlib.sha256(value.encode()).hexdigest()[:8]}>"


class Secrets:
    """The secret values of one run, each with a label saying what it is."""

    def __init__(self):
        self._labels = {}  # value -> label

    def add(self, value, label):
        if not isinstance(value, str) or not value:
            return
        if len(value) < MIN_LENGTH:
            raise ValueError(f"secret {label} {redacted(value)} is shorter than {MIN_LENGTH} characters: "
                             "a hit would mean nothing; use a long random value")
        self._labels.setdefault(value, label)

    def add_json(self, document, label):
        """Every string in a secret's JSON (a secrets file, a Secrets Manager SecretString) but the
        values of NOT_SECRET_KEYS and those too short to be secrets of their own."""
        def walk(node, path):
            if isinstance(node, dict):
                for key, child in node.items():
                    if key not in NOT_SECRET_KEYS:
                        walk(child, f"{path}.{key}" if path else key)
            elif isinstance(node, list):
                for index, child in enumerate(node):
                    walk(child, f"{path}[{index}]")
            elif isinstance(node, str) and len(node) >= MIN_LENGTH:
                self.add(node, f"{label} {path}")
        walk(document, "")

    def items(self):
        return list(self._labels.items())

    def __len__(self):
        return len(self._labels)


def log_files(root):
    """Every *.log file under `root` (the programs' stdout and stderr, as the harness keeps them)."""
    found = []
    for directory, _, names in os.walk(root):
        found.extend(os.path.join(directory, name) for name in names if name.endswith(".log"))
    return sorted(found)


def scan(paths, secrets, root=None):
    """[(path relative to `root`, line number from 1, label, redacted value)] of every line of
    `paths` that holds a secret of `secrets` (a Secrets)."""
    needles = [(value.encode(), label, redacted(value)) for value, label in secrets.items()]
    findings = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        if not any(needle in data for needle, _, _ in needles):
            continue
        shown = os.path.relpath(path, root) if root else path
        for number, line in enumerate(data.split(b"\n"), start=1):
            for needle, label, form in needles:
                if needle in line:
                    findings.append((shown, number, label, form))
    return findings


def describe(findings, limit=20):
    """One line per finding (the first `limit`), for an assertion message."""
    lines = [f"{path}:{number}: {label} {form}" for path, number, label, form in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    return "\n".join(lines)
