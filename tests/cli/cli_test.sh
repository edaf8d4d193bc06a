#!/usr/bin/env bash
# Runs pwrcell-adapter as a user would and checks exit codes and output.
# Usage: cli_test.sh PWRCELL_ADAPTER SEED_DEVICES SOURCE_DIR
set -uo pipefail
bin=$1 seed=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0

# expect NAME WANT_EXIT PATTERN -- CMD...: runs CMD, checks its exit code and that stdout+stderr match PATTERN.
expect() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local out code
  out=$("$@" 2>&1)
  code=$?
  if [ "$code" -ne "$want" ]; then
    echo "FAIL $name: exit $code, expected $want"; echo "$out" | head -20; failed=$((failed + 1)); return
  fi
  if [ -n "$pattern" ] && ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL $name: output does not match /$pattern/"; echo "$out" | head -20; failed=$((failed + 1)); return
  fi
  echo "ok   $name"; passed=$((passed + 1))
}

expect help 0 'devices +Read the device table' -- "$bin" --help
expect help-exit-codes 0 '3 invalid configuration' -- "$bin" --help
expect no-command 2 'subcommand' -- "$bin"
expect unknown-command 2 '' -- "$bin" frobnicate

expect example-config-valid 0 'deployment_example.toml: OK' -- "$bin" config check "$src/deployment_example.toml"
expect local-config-valid 0 ': OK' -- "$bin" config check "$src/deployment.toml"
expect effective-config 0 'offline_timeout_s = 900' -- "$bin" config check "$src/deployment_example.toml" --print

printf '[concerto]\ntimeout_s = "thirty"\n' >"$work/wrong-type.toml"
expect wrong-type 3 'concerto\.timeout_s.*thirty' -- "$bin" config check "$work/wrong-type.toml"
printf '[concerto]\ntimout_s = 30\n' >"$work/unknown-key.toml"
expect unknown-key 3 'concerto\.timout_s' -- "$bin" config check "$work/unknown-key.toml"
printf '[liveness]\noffline_timeout_s = 0\n' >"$work/range.toml"
expect out-of-range 3 'liveness\.offline_timeout_s' -- "$bin" config check "$work/range.toml"
printf '[adapter\nname = 1\n' >"$work/syntax.toml"
expect syntax-error 3 'syntax\.toml' -- "$bin" config check "$work/syntax.toml"
expect missing-config 4 'nope\.toml' -- "$bin" config check "$work/nope.toml"
expect env-override-bad 3 'PWRCELL_CONCERTO_WORKERS' -- env PWRCELL_CONCERTO_WORKERS=many "$bin" config check "$src/deployment_example.toml"

expect no-table 4 'no device table' -- "$bin" devices list --db "$work/absent.db"
"$seed" "$work/devices.db" "$src/tests/data/devices.json" || { echo "FAIL seeding"; exit 1; }
expect list-table 0 '2 systems' -- "$bin" devices list --db "$work/devices.db"
expect list-shows-rows 0 'sys-dc-0001.*DC.*000100007010' -- "$bin" devices list --db "$work/devices.db"
expect list-json 0 '"remote_id": "sys-ac-0002"' -- "$bin" devices list --db "$work/devices.db" --json
expect show 0 'remote_state +ONLINE \(telemetry received 30 s ago\)' -- "$bin" devices show sys-dc-0001 --db "$work/devices.db"
expect show-json 0 '"inverter_rcpn": "000100007010"' -- "$bin" devices show sys-dc-0001 --db "$work/devices.db" --json
expect show-unknown 4 'no device with remote_id nobody' -- "$bin" devices show nobody --db "$work/devices.db"
printf '[storage]\npath = "%s"\n' "$work/devices.db" >"$work/with-storage.toml"
expect list-via-config 0 '2 systems' -- "$bin" devices list --config "$work/with-storage.toml"

expect map-vector 0 '33 points, 0 unmapped' -- "$bin" telemetry map --device "$src/examples/dc_system.json" --text "$src/examples/dc_record.textproto"
expect map-json 0 '"metric": "STATE_OF_CHARGE"' -- "$bin" telemetry map --device "$src/examples/dc_system.json" --text "$src/examples/dc_record.textproto" --json
printf 'garbage\xff\xfe' >"$work/garbage.bin"
expect map-garbage 5 'garbage\.bin' -- "$bin" telemetry map --device "$src/examples/dc_system.json" "$work/garbage.bin"
: >"$work/empty.bin"
expect map-empty 5 'empty' -- "$bin" telemetry map --device "$src/examples/dc_system.json" "$work/empty.bin"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
