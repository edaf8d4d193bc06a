#!/usr/bin/env bash
# The adapter on a sample (until `serve` and the end-to-end demo exist): install, build, check
# the example configuration, map the worked telemetry records to Concerto points.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target pwrcell-adapter
bin=build/bin/pwrcell-adapter
echo "== config check deployment_example.toml =="
"$bin" config check deployment_example.toml
echo "== the worked DC record mapped to Concerto points =="
"$bin" telemetry map --device examples/dc_system.json --text examples/dc_record.textproto
