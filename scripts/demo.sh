#!/usr/bin/env bash
# The demo: installs what is missing, builds, then runs the adapter end to end against the
# simulators (scripts/demo.py): 50 systems enrolled in Concerto get registered, their metadata,
# their sites and assets (auto-commissioning on) and come ONLINE; scripted faults show OFFLINE
# and ERROR with reasons; a summary; a clean stop. About 3 minutes after the build.
# Usage: scripts/demo.sh [--keep] [--duration S] [--workdir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target pwrcell-adapter fleet-sim
exec python3 scripts/demo.py --bin-dir build/bin "$@"
