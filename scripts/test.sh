#!/usr/bin/env bash
# The whole test suite from a fresh clone: install dependencies, build (Release, into build/),
# run every test with CTest. Usage: scripts/test.sh [extra ctest args]
#
# Two CTest runs: the tests that keep the CPU busy (unit, conformance, CLI, simulators, clients,
# HTTP, AWS, template) with one job per core, then the end-to-end scenarios (label e2e: separate
# processes that spend most of their time waiting on each other's schedules) with two jobs per
# core. Measured on the 2-core CI machine: the 31 e2e tests pass at -j4 in 5 min 48 s with their
# usual per-test durations; at -j2 they took twice that. Both runs always happen; the exit status
# is the first failure's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
status=0
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE e2e "$@" || status=$?
ctest --test-dir build --output-on-failure -j"$(( 2 * $(nproc) ))" -L e2e "$@" || { [ "$status" -ne 0 ] || status=$?; }
exit "$status"
