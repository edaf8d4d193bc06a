# shellcheck shell=bash
# Helpers shared by the CLI tests (cli_test.sh, cli_aws_test.sh); sourced, not run. Each check
# prints "ok   NAME" or "FAIL NAME: why" and counts into $passed / $failed; `finish` prints the
# totals and returns non-zero when a check failed (the test's exit status).
passed=0 failed=0

# pass NAME: counts a check that held.
pass() { echo "ok   $1"; passed=$((passed + 1)); }

# fail NAME WHY: counts a check that did not.
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# expect NAME WANT_EXIT PATTERN -- CMD...: runs CMD, checks its exit code and that stdout+stderr match PATTERN.
expect() {
  local name=$1 want=$2 pattern=$3
  shift 4
  local out code
  out=$("$@" 2>&1)
  code=$?
  if [ "$code" -ne "$want" ]; then
    fail "$name" "exit $code, expected $want"; echo "$out" | head -20; return
  fi
  if [ -n "$pattern" ] && ! grep -qE -- "$pattern" <<<"$out"; then
    fail "$name" "output does not match /$pattern/"; echo "$out" | head -20; return
  fi
  pass "$name"
}

# finish: prints the totals; its status is the test's.
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
