"""Imports tests/e2e's harness in Lambda mode for the lambda.* tests (PWRCELL_E2E_BACKEND=lambda:
the functions of docs/LAMBDA.md under the runtime API stand-in, on moto)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["PWRCELL_E2E_BACKEND"] = "lambda"
for path in (HERE, os.path.join(HERE, "..", "e2e")):
    if path not in sys.path:
        sys.path.insert(0, path)

import harness  # noqa: E402,F401
