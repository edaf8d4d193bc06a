#!/bin/sh
# `serve` at rest over a seeded device table (issue 10 item 6): CPU% over 60 s and RSS, and the
# latency of the device API, one device and /metrics. Seed the file first with
#   fleet_scale --systems 100000 --db /tmp/fleet.db --keep
# then: bench/fleet_serve_rest.sh build/bin/pwrcell-adapter /tmp/fleet.db [measure_s]
# Concerto and CES are unreachable (a closed port) and polled once an hour, so what runs is the
# scheduler, the liveness sweep (every 60 s), the simulated-telemetry tick (every second) and the
# scrapes made here; the seeded systems are heard "in the future" of the wall clock, so ONLINE.
set -eu
ADAPTER=$1
DB=$2
MEASURE=${3:-60}
DIR=$(mktemp -d)
PID=
trap 'if [ -n "$PID" ] && ! kill -0 $PID 2>/dev/null; then echo "serve exited:"; tail -n 30 "$DIR/serve.log"; fi; kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
printf '{"ConcertoCredentials": {"email": "a@b.c", "password": "x"}, "CesCredentials": {"api_key": "k"}}' >"$DIR/secrets.json"
chmod 600 "$DIR/secrets.json"
cat >"$DIR/deployment.toml" <<TOML
[concerto]
root_url = "http://127.0.0.1:9"
[ces]
root_url = "http://127.0.0.1:9"
[schedule]
registrar_poll_s = 3600
ces_state_poll_s = 3600
liveness_sweep_s = 60
[secrets]
path = "$DIR/secrets.json"
[storage]
path = "$DB"
[telemetry]
listen = "127.0.0.1:28570"
[admin]
listen = "127.0.0.1:28571"
TOML
"$ADAPTER" serve --config "$DIR/deployment.toml" --log-level warn >"$DIR/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 120); do
  curl -fs http://127.0.0.1:28571/readyz >/dev/null 2>&1 && break
  sleep 1
done
sleep 20  # past the start
if ! kill -0 $PID 2>/dev/null; then
  echo "serve exited:"; cat "$DIR/serve.log"; exit 1
fi
ticks() { awk '{print $14 + $15}' /proc/$PID/stat; }
HZ=$(getconf CLK_TCK)
T0=$(ticks)
sleep "$MEASURE"
T1=$(ticks)
echo "serve at rest: $(echo "scale=1; 100 * ($T1 - $T0) / $HZ / $MEASURE" | bc)% of a core over ${MEASURE} s"
echo "RSS: $(awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' /proc/$PID/status), peak $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' /proc/$PID/status)"
for url in "/api/devices" "/api/devices?remote_state=ONLINE&limit=100" "/api/devices/sys-0000042" "/metrics"; do
  curl -s -o /dev/null -w "GET $url: %{http_code} %{size_download} bytes in %{time_total} s\n" "http://127.0.0.1:28571$url"
done
echo "RSS after the requests: $(awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' /proc/$PID/status)"
