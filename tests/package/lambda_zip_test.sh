#!/usr/bin/env bash
# package.lambda_zip: scripts/package-lambda.sh --binary EXECUTABLE: the zip holds it as `bootstrap`
# at its root with mode 0755 and, in lib/, every library it needs but glibc; unpacked with only lib/
# on the library path (as Lambda puts $LAMBDA_TASK_ROOT/lib there), it starts, prints what it
# should (SAYS, an extended regular expression) and exits 1 (outside Lambda); an executable
# needing a glibc newer than 2.34 is refused, by name.
# Usage: lambda_zip_test.sh PACKAGE_LAMBDA_SH EXECUTABLE GLIBC_2_36_PROBE SAYS
set -uo pipefail
script=$1 bootstrap=$2 probe=$3 says=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() {  # check NAME STATUS DETAIL
  if [ "$2" -eq 0 ]; then echo "ok   $1"; passed=$((passed + 1)); else echo "FAIL $1: $3"; failed=$((failed + 1)); fi
}

bash "$script" --binary "$bootstrap" --out "$work/out" >"$work/report" 2>&1
code=$?
cat "$work/report"
check packaged "$code" "package-lambda.sh exited $code"
zip="$work/out/pwrcell-adapter-lambda.zip"
grep -qE "^$zip: [0-9]+ bytes" "$work/report"
check reports-zip-size $? "no '<zip>: <size> bytes' line"
grep -qE '^newest glibc symbol version bootstrap needs: GLIBC_2\.[0-9]+ \(Amazon Linux 2023: 2\.34\)$' "$work/report"
check reports-glibc $? "no glibc version line"
grep -qE '^  libc\.so\.6 +direct +glibc: in the image' "$work/report"
check reports-libraries $? "libc.so.6 not listed as a direct need of the image"

listing=$(unzip -Z "$zip" 2>&1)
grep -qE '^-rwxr-xr-x .* bootstrap$' <<<"$listing"
check bootstrap-at-root-0755 $? "no entry 'bootstrap' with mode -rwxr-xr-x: $listing"
! grep -qE ' lib/libc\.so|ld-linux' <<<"$listing"
check no-glibc-bundled $? "glibc bundled: $listing"

mkdir "$work/task" && unzip -q "$zip" -d "$work/task"
[ -n "$(ls -A "$work/task/lib" 2>/dev/null)" ]
check libraries-bundled $? "no lib/ in the package"
unbundled=$(env -i LD_LIBRARY_PATH="$work/task/lib" ldd "$work/task/bootstrap" | awk '/=>/ {print $1, $3}' |
  grep -vE "^(libc|libm|libdl|libpthread|librt|libresolv)\.so\.[0-9]+ " | grep -v " $work/task/lib/")
[ -z "$unbundled" ]
check every-library-bundled $? "resolved outside lib/: $unbundled"
out=$(env -i LD_LIBRARY_PATH="$work/task/lib" "$work/task/bootstrap" 2>&1)
code=$?
[ "$code" -eq 1 ] && grep -qE -- "$says" <<<"$out"
check starts-from-the-package $? "exit $code: $out"

bash "$script" --binary "$probe" --out "$work/probe" >"$work/probe-report" 2>&1
code=$?
[ "$code" -eq 1 ] && grep -q 'bootstrap needs GLIBC_2.36: .*arc4random' "$work/probe-report" &&
  [ ! -e "$work/probe/pwrcell-adapter-lambda.zip" ]
check refuses-newer-glibc $? "exit $code: $(cat "$work/probe-report")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
