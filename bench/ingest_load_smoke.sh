#!/usr/bin/env bash
# CTest smoke run of ingest_load (bench.ingest_load_smoke): starts `pwrcell-adapter serve` on free
# ports with a store in a temporary directory (Concerto and CES unreachable: only ingest and the
# telemetry stage matter here), then runs the driver briefly in both modes, with a few idle and
# slow connections on the ingest and admin ports. Fails when serve does not start or the driver
# exits non-zero (a request unanswered or answered other than 200).
#   ingest_load_smoke.sh <pwrcell-adapter> <ingest_load>
set -euo pipefail
adapter=$1
driver=$2
dir=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

cat > "$dir/secrets.json" <<JSON
{"ConcertoCredentials": {"email": "smoke@example.com", "password": "smoke"}, "CesCredentials": {"api_key": "smoke"}}
JSON
chmod 600 "$dir/secrets.json"
cat > "$dir/deployment.toml" <<TOML
[concerto]
root_url = "http://127.0.0.1:9"
timeout_s = 1
[ces]
root_url = "http://127.0.0.1:9"
timeout_s = 1
[secrets]
path = "$dir/secrets.json"
[storage]
path = "$dir/adapter.db"
[telemetry]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
TOML

"$adapter" serve --config "$dir/deployment.toml" > "$dir/serve.log" 2>&1 &
pid=$!
port_of() { sed -n "s/.*$1 server listening on [0-9.]*:\([0-9]*\).*/\1/p" "$dir/serve.log" | head -1; }
for _ in $(seq 1 300); do
  if [ -n "$(port_of ingest)" ] && [ -n "$(port_of admin)" ]; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$dir/serve.log"; exit 1; fi
  sleep 0.1
done
ingest=$(port_of ingest)
admin=$(port_of admin)
if [ -z "$ingest" ] || [ -z "$admin" ]; then cat "$dir/serve.log"; exit 1; fi

"$driver" --port "$ingest" --admin-port "$admin" --connections 2 --seconds 2 --records-per-body 50 \
  --idle 20 --slow 5 --admin-slow 5
"$driver" --port "$ingest" --connections 2 --seconds 1 --mode protobuf
