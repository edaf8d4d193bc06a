#!/usr/bin/env bash
# Builds the Lambda functions' one executable, `bootstrap` (docs/LAMBDA.md), and zips it for the
# provided.al2023 runtime (x86_64): build-lambda/pwrcell-adapter-lambda.zip, `bootstrap` at the
# zip's root (mode 0755) and, in lib/, the shared libraries it needs that are not glibc.
#
#   scripts/package-lambda.sh                  configure build-lambda/ (Release,
#                                              -DPWRCELL_LAMBDA_STATIC=ON), build `bootstrap`, zip it
#   scripts/package-lambda.sh --binary FILE [--out DIR]
#                                              package an executable built elsewhere (no build);
#                                              the test package.lambda_zip uses it
#
# What is static, what is not and why: docs/PACKAGING.md. In short: libstdc++, libgcc, protobuf,
# SQLite, zlib, libcurl and OpenSSL are linked in; fmt, spdlog and toml++ are header-only; glibc
# stays shared (the image's, 2.34); the rest of libcurl's dependencies (no static archive on
# Debian) go to lib/, which the executable searches first (DT_RPATH $ORIGIN/lib).
#
# Checks, each a non-zero exit with the reason: no symbol of the executable or of a bundled library
# needs a glibc newer than Amazon Linux 2023's (2.34); every library it needs is found.
# Environment: JOBS (parallel build jobs, default 2), ZIP_NAME (default pwrcell-adapter-lambda.zip).
set -euo pipefail

readonly AL2023_GLIBC=2.34
# glibc's own libraries: the image has them (glibc 2.34); never bundled (they must match its loader).
readonly GLIBC_LIBS=" ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libresolv.so.2 \
libutil.so.1 libanl.so.1 libnsl.so.1 libcrypt.so.1 libmvec.so.1 linux-vdso.so.1 "

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary=""
out="$root/build-lambda"
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=${2:?--binary needs a FILE}; shift 2 ;;
    --out) out=${2:?--out needs a DIR}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "package-lambda: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$binary" ]; then
  build="$root/build-lambda"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPWRCELL_LAMBDA_STATIC=ON -DPWRCELL_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" --target bootstrap -j "${JOBS:-2}"
  binary="$build/bin/bootstrap"
fi
[ -x "$binary" ] || { echo "package-lambda: no executable at $binary" >&2; exit 1; }

# What a library is on provided.al2023 (the AL2023 minimal image), for the report.
image_note() {
  case $1 in
    ld-linux-x86-64.so.2|libc.so.6|libm.so.6|libdl.so.2|libpthread.so.0|librt.so.1|libresolv.so.2)
      echo "glibc: in the image (glibc $AL2023_GLIBC), not bundled" ;;
    libstdc++.so.6|libgcc_s.so.1)
      echo "probably in the image (GCC 11's, for microdnf's libdnf), too old for GCC 12 code: bundled" ;;
    libz.so.1|libcrypto.so.3|libssl.so.3|libnghttp2.so.14|libzstd.so.1)
      echo "probably in the image (dependencies of microdnf's libcurl-minimal), Debian's build bundled" ;;
    libcurl.so.4)
      echo "the image's libcurl-minimal lacks Debian's versioned symbols (CURL_OPENSSL_4): bundled" ;;
    *) echo "not in the minimal image: bundled" ;;
  esac
}

is_glibc() { [[ $GLIBC_LIBS == *" $1 "* ]]; }

# The newest GLIBC_x.y version `file` needs (its undefined dynamic symbols), or "none".
glibc_needed() {
  objdump -T "$1" | awk '$0 ~ /\*UND\*/' | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1 ||
    true
}
newer_than_al2023() { [ "$(printf '%s\n%s\n' "$1" "$AL2023_GLIBC" | sort -V | tail -1)" != "$AL2023_GLIBC" ]; }

package="$out/package"
zip_path="$out/${ZIP_NAME:-pwrcell-adapter-lambda.zip}"
rm -rf "$package" "$zip_path"
mkdir -p "$package/lib"
install -m 0755 "$binary" "$package/bootstrap"
strip --strip-unneeded "$package/bootstrap"

# Every shared library the loader would map (ldd: direct and indirect), by soname and path.
missing=$(ldd "$binary" | awk '/not found/ {print $1}')
[ -z "$missing" ] || { echo "package-lambda: $binary needs libraries not found here: $missing" >&2; exit 1; }
mapfile -t libraries < <(ldd "$binary" | awk '/=>/ {print $1 " " $3} !/=>/ && $1 ~ /^\// {print $1 " " $1}')

echo "shared libraries $binary needs (readelf NEEDED: direct; the others through them):"
direct=" $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ') "
too_new=()
for entry in "${libraries[@]}"; do
  soname=${entry%% *} path=${entry#* }
  soname=${soname##*/}
  kind=$([[ $direct == *" $soname "* ]] && echo direct || echo indirect)
  printf '  %-24s %-8s %s\n' "$soname" "$kind" "$(image_note "$soname")"
  if ! is_glibc "$soname"; then
    cp -L "$path" "$package/lib/$soname"
    chmod 0644 "$package/lib/$soname"
    needs=$(glibc_needed "$path")
    if [ -n "$needs" ] && newer_than_al2023 "$needs"; then too_new+=("lib/$soname needs GLIBC_$needs"); fi
  fi
done
rmdir "$package/lib" 2>/dev/null || true

needs=$(glibc_needed "$package/bootstrap")
echo "newest glibc symbol version bootstrap needs: GLIBC_${needs:-none} (Amazon Linux 2023: $AL2023_GLIBC)"
if [ -n "$needs" ] && newer_than_al2023 "$needs"; then
  too_new+=("bootstrap needs GLIBC_$needs: $(objdump -T "$package/bootstrap" | awk '/\*UND\*/' |
    grep -E "GLIBC_(2\.3[5-9]|2\.[4-9][0-9])" | awk '{print $NF}' | sort -u | tr '\n' ' ')")
fi
if [ ${#too_new[@]} -gt 0 ]; then
  printf 'package-lambda: newer than Amazon Linux 2023 glibc %s (the function would not start):\n' "$AL2023_GLIBC" >&2
  printf '  %s\n' "${too_new[@]}" >&2
  exit 1
fi

# The zip: bootstrap at the root, executable (Lambda runs it as is); lib/ beside it.
(cd "$package" && zip -q -X -r "$zip_path" bootstrap $( [ -d lib ] && echo lib ))
size=$(stat -c %s "$zip_path")
echo "$zip_path: $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }'))," \
  "bootstrap $(stat -c %s "$package/bootstrap") bytes unzipped, $(find "$package" -path '*/lib/*' -type f | wc -l)" \
  "libraries in lib/"
