#!/usr/bin/env bash
# Runs pwrcell-adapter as a user would and checks exit codes and output.
# Usage: cli_test.sh PWRCELL_ADAPTER SEED_DEVICES SOURCE_DIR SEED_QUEUE
set -uo pipefail
bin=$1 seed=$2 src=$3 seed_queue=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

# config sam-parameters: stdout and stderr apart, in a clean environment (no PWRCELL_* overrides).
# run CMD...: sets $out (stdout), $err (stderr) and $code.
run() {
  out=$("$@" 2>"$work/stderr")
  code=$?
  err=$(cat "$work/stderr")
}
# verdict NAME CONDITION_STATUS DETAIL: counts a check whose condition was evaluated by the caller.
verdict() {
  if [ "$2" -eq 0 ]; then pass "$1"; else
    fail "$1" "$3"; echo "stdout: $out"; echo "stderr: $err"; echo "exit: $code"; fi
}
sam() { env -i PATH="$PATH" "$@"; }
defaults='AdapterName=pwrcell-adapter AutoCommissioning=false ConcertoRootUrl=http://127.0.0.1:8080'
defaults+=' CesRootUrl=http://127.0.0.1:8081 ConcertoCredentialsSecretName=ConcertoCredentials'
defaults+=' CesCredentialsSecretName=CesCredentials ConcertoTimeoutSeconds=30 CesTimeoutSeconds=30'
defaults+=' ConcertoRequestsPerSecond=25 CesRequestsPerSecond=10 ConcertoPageSize=100 CesStatusBatchSize=100'
defaults+=' RegistrarPollSeconds=60 CesStatePollSeconds=900 LivenessSweepSeconds=60 MetadataRefreshSeconds=86400'
defaults+=' OfflineTimeoutSeconds=900 RecordIntervalSeconds=300 SimulatedRecordIntervalSeconds=300 MaxReceives=5'
defaults+=' VisibilityTimeoutSeconds=60 ConcertoGatewayConcurrency=2 ConcertoTelemetryGatewayConcurrency=2'
defaults+=' PwrcellGatewayConcurrency=2'
: >"$work/empty.toml"
run sam "$bin" config sam-parameters "$work/empty.toml"
[ "$code" -eq 0 ] && [ "$out" = "$defaults" ] && [ -z "$err" ]
verdict sam-defaults $? "expected exactly: $defaults (and nothing on stderr)"

printf '[adapter]\nname = "my adapter"\nauto_commissioning = true\n[concerto]\nmax_requests_per_second = 12.5\n' \
  >"$work/sam-override.toml"
printf '[schedule]\nregistrar_poll_s = 300\n[lambda]\nces_concurrency = 4\n' >>"$work/sam-override.toml"
run sam PWRCELL_SCHEDULE_CES_STATE_POLL_S=1800 "$bin" config sam-parameters "$work/sam-override.toml"
want=${defaults/AdapterName=pwrcell-adapter/AdapterName=\"my adapter\"}
want=${want/AutoCommissioning=false/AutoCommissioning=true}
want=${want/ConcertoRequestsPerSecond=25/ConcertoRequestsPerSecond=12.5}
want=${want/RegistrarPollSeconds=60/RegistrarPollSeconds=300}
want=${want/CesStatePollSeconds=900/CesStatePollSeconds=1800}
want=${want/PwrcellGatewayConcurrency=2/PwrcellGatewayConcurrency=4}
[ "$code" -eq 0 ] && [ "$out" = "$want" ] && [ -z "$err" ]
verdict sam-overridden $? "expected exactly: $want"

# The output is one shell word per pair: a value with quotes, a dollar and a backtick survives eval.
printf '[adapter]\nname = "it'"'"'s \\"$HOME\\" `x` \\\\ ok"\n' >"$work/sam-quote.toml"
run sam "$bin" config sam-parameters "$work/sam-quote.toml"
eval "set -- $out"
[ "$code" -eq 0 ] && [ "$1" = "AdapterName=it's \"\$HOME\" \`x\` \\ ok" ] && [ "$#" -eq 24 ]
verdict sam-shell-quoting $? "expected 24 words, the first AdapterName=it's \"\$HOME\" \`x\` \\ ok; got $# words, first: $1"

printf '[schedule]\nregistrar_poll_s = 90\n' >"$work/sam-90.toml"
run sam "$bin" config sam-parameters "$work/sam-90.toml"
[ "$code" -eq 3 ] && [ -z "$out" ] && grep -qF "sam-90.toml: schedule.registrar_poll_s = 90: EventBridge schedules are \
whole minutes; the template takes 60, 120, 180, 300, 600, 900, 1800, 3600" <<<"$err"
verdict sam-schedule-not-minutes $? "expected exit 3, no stdout, the key, the value and the allowed values"

printf '[schedule]\nces_state_poll_s = 240\n' >"$work/sam-240.toml"
run sam "$bin" config sam-parameters "$work/sam-240.toml"
[ "$code" -eq 3 ] && grep -qE "schedule\.ces_state_poll_s = 240: not one of the template's AllowedValues" <<<"$err"
verdict sam-schedule-not-allowed $? "expected exit 3 naming schedule.ces_state_poll_s = 240"

run sam PWRCELL_SCHEDULE_LIVENESS_SWEEP_S=45 "$bin" config sam-parameters "$work/empty.toml"
[ "$code" -eq 3 ] && grep -qE "^error: PWRCELL_SCHEDULE_LIVENESS_SWEEP_S: schedule\.liveness_sweep_s = 45: " <<<"$err"
verdict sam-schedule-from-environment $? "expected exit 3 naming the variable that set the value"

printf '[lambda]\nconcerto_control_concurrency = 1\n' >"$work/sam-concurrency.toml"
run sam "$bin" config sam-parameters "$work/sam-concurrency.toml"
[ "$code" -eq 3 ] && [ -z "$out" ] &&
  grep -qE "lambda\.concerto_control_concurrency = 1: .*MaximumConcurrency, which is at least 2" <<<"$err"
verdict sam-concurrency-below-2 $? "expected exit 3 naming lambda.concerto_control_concurrency = 1"

printf '[queues]\nvisibility_timeout_s = 901\n' >"$work/sam-visibility.toml"
run sam "$bin" config sam-parameters "$work/sam-visibility.toml"
[ "$code" -eq 3 ] && grep -qE "queues\.visibility_timeout_s = 901: .*at most 900 s" <<<"$err"
verdict sam-visibility-above-900 $? "expected exit 3 naming queues.visibility_timeout_s = 901"

printf '[concerto]\nroot_url = "HTTPS://concerto.example"\n' >"$work/sam-url.toml"
run sam "$bin" config sam-parameters "$work/sam-url.toml"
[ "$code" -eq 3 ] && grep -qF 'concerto.root_url = HTTPS://concerto.example: the template takes a URL starting with' <<<"$err"
verdict sam-url-scheme-case $? "expected exit 3 naming concerto.root_url (the template's pattern is lower case)"

# template.yml's Parameters, with their Defaults: exactly the pairs printed for an empty file.
template_pairs=$(awk '/^Parameters:/ {in_params = 1; next} in_params && /^[^ #]/ {exit}
  in_params && /^  [A-Za-z]+:$/ {name = substr($1, 1, length($1) - 1)}
  in_params && /^    Default: / {value = substr($0, index($0, ":") + 2); gsub(/"/, "", value); print name "=" value}' \
  "$src/template.yml" | sort)
printed_pairs=$(tr ' ' '\n' <<<"$defaults" | sort)
[ -n "$template_pairs" ] && [ "$template_pairs" = "$printed_pairs" ]
verdict sam-matches-template $? "template.yml's parameters and defaults differ: $(diff <(echo "$template_pairs") \
  <(echo "$printed_pairs") | tr '\n' ' ')"

printf '[storage]\npath = "/var/lib/pwrcell/adapter.db"\n[concerto]\nworkers = 3\n' >"$work/sam-storage.toml"
run sam "$bin" config sam-parameters "$work/sam-storage.toml"
[ "$code" -eq 0 ] && [ "$out" = "$defaults" ] &&
  [ "$err" = "note: concerto.workers is not a template parameter (concurrency is the functions': lambda.*_concurrency); ignored
note: storage.path is not a template parameter (the stack has no SQLite file); ignored" ]
verdict sam-notes $? "expected the defaults on stdout and one note each for concerto.workers and storage.path"

printf '[storage]\npath = "pwrcell-adapter.db"\n[backend]\nkind = "embedded"\n' >"$work/sam-default-keys.toml"
run sam "$bin" config sam-parameters "$work/sam-default-keys.toml"
[ "$code" -eq 0 ] && [ -z "$err" ]
verdict sam-no-note-for-defaults $? "expected no note for keys set to their defaults"

run sam "$bin" config sam-parameters "$work/wrong-type.toml"
[ "$code" -eq 3 ] && [ -z "$out" ] && grep -q 'concerto\.timeout_s' <<<"$err"
verdict sam-invalid-file $? "expected exit 3 as config check"
run sam "$bin" config sam-parameters "$work/nope.toml"
[ "$code" -eq 4 ] && grep -q 'nope\.toml' <<<"$err"
verdict sam-missing-file $? "expected exit 4"
expect sam-help 0 'parameter-overrides' -- "$bin" config sam-parameters --help

expect no-table 4 'no device table' -- "$bin" devices list --db "$work/absent.db"
"$seed" "$work/devices.db" "$src/tests/data/devices.json" || { echo "FAIL seeding"; exit 1; }
# tests/data/devices.json: two records in the single-inverter shape of older versions, one with two inverters.
expect list-table 0 '3 systems' -- "$bin" devices list --db "$work/devices.db"
expect list-shows-rows 0 'sys-dc-0001.*DC.*000100007010' -- "$bin" devices list --db "$work/devices.db"
expect list-json 0 '"remote_id": "sys-ac-0002"' -- "$bin" devices list --db "$work/devices.db" --json
expect show 0 'remote_state +ONLINE \(telemetry received 30 s ago\)' -- "$bin" devices show sys-dc-0001 --db "$work/devices.db"
expect show-json 0 '"inverter_rcpns": \[' -- "$bin" devices show sys-dc-0001 --db "$work/devices.db" --json
expect show-old-shape 0 'inverter_rcpns +000100007010$' -- "$bin" devices show sys-dc-0001 --db "$work/devices.db"
expect list-two-inverters 0 'sys-dc-0003.*000100007030,000100007031' -- "$bin" devices list --db "$work/devices.db"
expect show-two-inverters 0 'inverters +asset-31 \(remoteId 000100007030\), asset-32 \(remoteId 000100007031\)' -- "$bin" devices show sys-dc-0003 --db "$work/devices.db"
expect show-inverter-in-error 0 'inverter_state +28688 \(0x7010\)' -- "$bin" devices show sys-dc-0003 --db "$work/devices.db"
expect show-unknown 4 'no device with remote_id nobody' -- "$bin" devices show nobody --db "$work/devices.db"
printf '[storage]\npath = "%s"\n' "$work/devices.db" >"$work/with-storage.toml"
expect list-via-config 0 '3 systems' -- "$bin" devices list --config "$work/with-storage.toml"

expect map-vector 0 '33 points, 0 unmapped' -- "$bin" telemetry map --device "$src/examples/dc_system.json" --text "$src/examples/dc_record.textproto"
expect map-json 0 '"metric": "STATE_OF_CHARGE"' -- "$bin" telemetry map --device "$src/examples/dc_system.json" --text "$src/examples/dc_record.textproto" --json
printf 'garbage\xff\xfe' >"$work/garbage.bin"
expect map-garbage 5 'garbage\.bin' -- "$bin" telemetry map --device "$src/examples/dc_system.json" "$work/garbage.bin"
: >"$work/empty.bin"
expect map-empty 5 'empty' -- "$bin" telemetry map --device "$src/examples/dc_system.json" "$work/empty.bin"

# queues: a store with dead letters in two queues and a live message in a third.
db="$work/queues.db"
expect queues-no-store 4 'no store at .*absent\.db' -- "$bin" queues list --db "$work/absent.db"
"$seed_queue" "$db" concerto dead 'text:{"op":"commission","remote_id":"sys-dc-0001"}' \
  'text:{"op":"update_remote_state","remote_id":"sys-ac-0002"}' || { echo "FAIL seeding queues"; exit 1; }
printf 'not a record\x1b[31m\x00' >"$work/undecodable.bin"
"$seed_queue" "$db" ingest dead "textproto:$src/examples/dc_record.textproto" "file:$work/undecodable.bin" ||
  { echo "FAIL seeding queues"; exit 1; }
"$seed_queue" "$db" ces live 'text:{"op":"get_metadata","remote_id":"sys-dc-0001"}' || { echo "FAIL seeding queues"; exit 1; }
expect queues-list 0 '^concerto +0 +0 +2$' -- "$bin" queues list --db "$db"
expect queues-list-live 0 '^ces +1 +0 +0$' -- "$bin" queues list --db "$db"
expect queues-list-total 0 '^4 dead letters in all' -- "$bin" queues list --db "$db"
expect queues-list-json 0 '"queue": "concerto-telemetry"' -- "$bin" queues list --db "$db" --json
printf '[storage]\npath = "%s"\n' "$db" >"$work/queues.toml"
expect queues-list-via-config 0 '^ingest +0 +0 +2$' -- "$bin" queues list --config "$work/queues.toml"
expect dead-letters 0 '^1 +[0-9T:.-]+Z +1 +[0-9]+ +\{"op":"commission","remote_id":"sys-dc-0001"\}$' -- \
  "$bin" queues dead-letters concerto --db "$db"
expect dead-letters-count 0 '^2 of 2 dead letters in queue concerto$' -- "$bin" queues dead-letters concerto --db "$db"
expect dead-letters-limit 0 '^1 of 2 dead letters' -- "$bin" queues dead-letters concerto --db "$db" --limit 1
expect dead-letters-record 0 'inverterId=000100007010 records=1 first=' -- "$bin" queues dead-letters ingest --db "$db"
expect dead-letters-binary 0 ' 18 +base64:bm90IGEgcmVjb3JkG1szMW0A$' -- "$bin" queues dead-letters ingest --db "$db"
if "$bin" queues dead-letters ingest --db "$db" 2>&1 | grep -q $'\x1b'; then
  fail dead-letters-no-control-bytes "a preview printed an escape byte"
else
  pass dead-letters-no-control-bytes
fi
expect dead-letters-json 0 '"kind": "energy_record_set"' -- "$bin" queues dead-letters ingest --db "$db" --json
expect dead-letters-json-size 0 '"size_bytes": 18' -- "$bin" queues dead-letters ingest --db "$db" --json
expect dead-letters-unknown 2 "unknown queue 'nope'; the queues are: ingest, concerto, concerto-telemetry, ces" -- \
  "$bin" queues dead-letters nope --db "$db"
expect dead-letters-bad-limit 2 'limit.*at least 1' -- "$bin" queues dead-letters concerto --db "$db" --limit 0
expect dead-letters-no-store 4 'no store' -- "$bin" queues dead-letters concerto --db "$work/absent.db"
expect redrive-unknown 2 'the queues are: ingest, concerto, concerto-telemetry, ces' -- "$bin" queues redrive nope --db "$db"
expect redrive-no-name 2 'NAME' -- "$bin" queues redrive --db "$db"
expect redrive-bad-max 2 'max.*at least 1' -- "$bin" queues redrive concerto --db "$db" --max -1
expect redrive-max 0 '^moved 1 dead letter back into queue concerto$' -- "$bin" queues redrive concerto --db "$db" --max 1
expect redrive-max-left-one 0 '^concerto +1 +0 +1$' -- "$bin" queues list --db "$db"
expect redrive-oldest-first 0 'update_remote_state' -- "$bin" queues dead-letters concerto --db "$db"
expect redrive-all 0 '^moved 1 dead letter back into queue concerto$' -- "$bin" queues redrive concerto --db "$db"
expect redrive-empty 0 '^moved 0 dead letters back into queue concerto$' -- "$bin" queues redrive concerto --db "$db"
expect redrive-done 0 '^concerto +2 +0 +0$' -- "$bin" queues list --db "$db"
expect redrive-others-kept 0 '^ingest +0 +0 +2$' -- "$bin" queues list --db "$db"

# Another process (serve) holding the write lock: a redrive waits for it, up to the 5 s busy
# timeout, then fails as a store error (exit 1).
hold() {  # hold SECONDS: starts a writer in the background; returns once it holds the lock
  rm -f "$work/hold.out"
  "$seed_queue" "$db" hold "$1" >"$work/hold.out" &
  holder=$!
  for _ in $(seq 200); do grep -q holding "$work/hold.out" 2>/dev/null && return; sleep 0.05; done
  echo "FAIL the writer never took the lock"; failed=$((failed + 1))
}
"$seed_queue" "$db" ingest dead 'text:{"again":true}' || { echo "FAIL seeding queues"; exit 1; }
hold 2
expect redrive-waits-for-writer 0 '^moved 3 dead letters back into queue ingest$' -- "$bin" queues redrive ingest --db "$db"
wait "$holder"
"$seed_queue" "$db" ces dead 'text:{"op":"get_status","remote_ids":[]}' || { echo "FAIL seeding queues"; exit 1; }
hold 8
expect redrive-busy-store 1 'UNAVAILABLE.*try again' -- "$bin" queues redrive ces --db "$db"
wait "$holder"
expect redrive-after-busy 0 '^moved 1 dead letter back into queue ces$' -- "$bin" queues redrive ces --db "$db"

finish
