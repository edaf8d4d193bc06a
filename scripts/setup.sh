#!/usr/bin/env bash
# Installs what pwrcell-adapter needs from Debian's packages. Skips apt entirely when every
# package is already present, so repeated runs are fast and work offline.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  protobuf-compiler libprotobuf-dev
  libsqlite3-dev sqlite3
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev
  libcpp-httplib-dev libmicrohttpd-dev libsimdjson-dev libcurl4-openssl-dev zlib1g-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format  # scripts/format.sh (CI's format check)
  clang libclang-rt-14-dev  # scripts/fuzz.sh (libFuzzer, clang 14)
)

# The simulators run on the python3 on PATH and need graphql-core and Flask. A machine whose
# python3 lacks them gets Debian's packages (which serve /usr/bin/python3).
if ! python3 -c "import graphql, flask" >/dev/null 2>&1; then
  PACKAGES+=(python3 python3-graphql-core python3-flask)
fi
# The AWS tests (tests/aws, e2e_aws.*) run moto_server and use boto3 from the same python3.
if ! python3 -c "import moto.server, boto3" >/dev/null 2>&1; then
  PACKAGES+=(python3 python3-moto python3-boto3)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
