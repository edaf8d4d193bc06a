#!/usr/bin/env bash
# The `devices` and `queues` commands on the AWS backend ([backend] kind = "aws"), against the moto
# server of the aws_moto CTest fixture (tests/aws/moto_fixture.py): the resources come from
# `pwrcell-adapter aws setup`, as an operator makes them, under names unique to this run. The
# same device records are seeded into a SQLite file and into DynamoDB, and the commands must print
# the same bytes for both.
# Usage: cli_aws_test.sh PWRCELL_ADAPTER SEED_DEVICES SOURCE_DIR MOTO_DIR
set -uo pipefail
bin=$1 seed=$2 src=$3 moto_dir=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

endpoint=$(cat "$moto_dir/endpoint") || { echo "FAIL no moto server (run with the aws.moto_start fixture)"; exit 1; }
secret_key="cli-secret-$RANDOM$RANDOM"  # moto takes any; no output may show it
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=$secret_key AWS_REGION=us-east-1 AWS_ENDPOINT_URL=$endpoint
unset AWS_SESSION_TOKEN AWS_DEFAULT_REGION

# same NAME -- ARGS...: the command prints the same stdout and exit code on the SQLite store and on AWS.
same() {
  local name=$1
  shift 2
  local embedded aws embedded_code aws_code
  embedded=$("$bin" "$@" --db "$work/devices.db" 2>&1)
  embedded_code=$?
  aws=$("$bin" "$@" --config "$work/aws.toml" 2>&1)
  aws_code=$?
  if [ "$embedded" != "$aws" ] || [ "$embedded_code" -ne "$aws_code" ]; then
    echo "FAIL $name: the AWS backend's answer differs from the embedded one"
    diff <(echo "$embedded"; echo "exit $embedded_code") <(echo "$aws"; echo "exit $aws_code") | head -20
    failed=$((failed + 1)); return
  fi
  pass "$name"
}

run_id="cli$$-$RANDOM"
write_config() {  # write_config FILE DEVICE_TABLE INGEST_QUEUE
  cat >"$1" <<EOF
[backend]
kind = "aws"

[aws]
device_table = "$2"
coordination_table = "pwrcell-coordination-$run_id"
ingest_queue = "$3"
concerto_queue = "pwrcell-concerto-$run_id"
concerto_telemetry_queue = "pwrcell-concerto-telemetry-$run_id"
ces_queue = "pwrcell-ces-$run_id"
telemetry_stream = ""
EOF
}
write_config "$work/aws.toml" "pwrcell-devices-$run_id" "pwrcell-ingest-$run_id"
expect aws-setup 0 "DynamoDB table pwrcell-devices-$run_id ready" -- "$bin" aws setup --config "$work/aws.toml"

# Devices: an empty table, then the records of tests/data/devices.json.
expect aws-list-empty 0 '^0 systems$' -- "$bin" devices list --config "$work/aws.toml"
expect aws-list-empty-header 0 '^REMOTE_ID +NAME +SIM +COUPLING +INVERTER_RCPN +COMMISSIONING +STATE +LAST_HEARD$' -- \
  "$bin" devices list --config "$work/aws.toml"
expect aws-list-empty-json 0 '^\[\]$' -- "$bin" devices list --config "$work/aws.toml" --json
expect aws-show-unknown 4 'no device with remote_id nobody' -- "$bin" devices show nobody --config "$work/aws.toml"

"$seed" "$work/devices.db" "$src/tests/data/devices.json" || { echo "FAIL seeding SQLite"; exit 1; }
"$seed" "aws:pwrcell-devices-$run_id" "$src/tests/data/devices.json" || { echo "FAIL seeding DynamoDB"; exit 1; }
expect aws-list 0 '^3 systems$' -- "$bin" devices list --config "$work/aws.toml"
expect aws-show 0 'remote_state +ONLINE \(telemetry received 30 s ago\)' -- \
  "$bin" devices show sys-dc-0001 --config "$work/aws.toml"
same aws-list-same-as-embedded -- devices list
same aws-list-json-same-as-embedded -- devices list --json
same aws-show-same-as-embedded -- devices show sys-dc-0003
same aws-show-json-same-as-embedded -- devices show sys-dc-0003 --json
same aws-show-unknown-same-as-embedded -- devices show nobody

# Clear errors: missing credentials, region, table.
expect aws-no-credentials 3 'AWS_ACCESS_KEY_ID is not set' -- \
  env -u AWS_ACCESS_KEY_ID "$bin" devices list --config "$work/aws.toml"
expect aws-no-region 3 'neither AWS_REGION nor AWS_DEFAULT_REGION is set' -- \
  env -u AWS_REGION "$bin" devices show nobody --config "$work/aws.toml"
write_config "$work/no-table.toml" "pwrcell-absent-$run_id" "pwrcell-ingest-$run_id"
expect aws-no-table 4 "pwrcell-absent-$run_id" -- "$bin" devices list --config "$work/no-table.toml"
if { "$bin" devices list --config "$work/no-table.toml"; "$bin" queues list --config "$work/no-table.toml"
     "$bin" devices show sys-dc-0001 --config "$work/aws.toml"; } 2>&1 | grep -qF "$secret_key"; then
  fail aws-no-secret-in-output "the secret access key was printed"
else
  pass aws-no-secret-in-output
fi

# Queues: SQS and its dead-letter queues ("<name>-dlq").
expect aws-queues-list 0 '^concerto +0 +0 +0$' -- "$bin" queues list --config "$work/aws.toml"
expect aws-queues-list-ingest 0 '^ingest +0 +0 +0$' -- "$bin" queues list --config "$work/aws.toml"
python3 - "pwrcell-concerto-$run_id-dlq" <<'EOF' || { echo "FAIL dead-lettering a message with boto3"; exit 1; }
import os, sys, boto3
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
url = sqs.get_queue_url(QueueName=sys.argv[1])["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody='{"op":"commission","remote_id":"sys-dc-0001"}')
EOF
expect aws-queues-dead 0 '^concerto +0 +0 +1$' -- "$bin" queues list --config "$work/aws.toml"
expect aws-dead-letters 0 ' \{"op":"commission","remote_id":"sys-dc-0001"\}$' -- \
  "$bin" queues dead-letters concerto --config "$work/aws.toml"
expect aws-dead-letters-count 0 '^1 of 1 dead letter in queue concerto$' -- \
  "$bin" queues dead-letters concerto --config "$work/aws.toml"
expect aws-dead-letters-json 0 '"kind": "json"' -- "$bin" queues dead-letters concerto --config "$work/aws.toml" --json
expect aws-redrive 0 '^moved 1 dead letter back into queue concerto$' -- \
  "$bin" queues redrive concerto --config "$work/aws.toml"
expect aws-redrive-done 0 '^concerto +1 +0 +0$' -- "$bin" queues list --config "$work/aws.toml"

# A Lambda stack has no ingest queue: `queues list` leaves it out with a note, asking for it is exit 4.
write_config "$work/lambda.toml" "pwrcell-devices-$run_id" "pwrcell-no-ingest-$run_id"
expect aws-no-ingest-note 0 "note: no SQS queue pwrcell-no-ingest-$run_id" -- \
  "$bin" queues list --config "$work/lambda.toml"
if "$bin" queues list --config "$work/lambda.toml" 2>/dev/null | grep -q '^ingest'; then
  fail aws-no-ingest-row "an ingest row was listed"
else
  pass aws-no-ingest-row
fi
expect aws-no-ingest-dead-letters 4 "pwrcell-no-ingest-$run_id" -- \
  "$bin" queues dead-letters ingest --config "$work/lambda.toml"
expect aws-devices-without-ingest 0 '^3 systems$' -- "$bin" devices list --config "$work/lambda.toml"

finish
