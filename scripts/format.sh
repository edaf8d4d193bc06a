#!/usr/bin/env bash
# Formats the C++ sources under src/ with clang-format and the repository's .clang-format.
#   scripts/format.sh            format them in place
#   scripts/format.sh --check    change nothing; list the files that differ and exit 1 if any do
# Extra arguments name other files or directories to use instead of src/ (e.g. tests/conformance).
# Uses $CLANG_FORMAT, else clang-format-14, else clang-format (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
paths=()
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    -h | --help)
      sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "format.sh: unknown option $arg (use --check)" >&2
      exit 2
      ;;
    *) paths+=("$arg") ;;
  esac
done
[ ${#paths[@]} -gt 0 ] || paths=(src)

clang_format="${CLANG_FORMAT:-}"
if [ -z "$clang_format" ]; then
  for candidate in clang-format-14 clang-format; do
    if command -v "$candidate" >/dev/null 2>&1; then
      clang_format="$candidate"
      break
    fi
  done
fi
if [ -z "$clang_format" ]; then
  echo "format.sh: clang-format not found (scripts/setup.sh installs it)" >&2
  exit 2
fi

mapfile -t files < <(find "${paths[@]}" -type f \( -name '*.cc' -o -name '*.h' \) | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "format.sh: no C++ files under ${paths[*]}" >&2
  exit 2
fi

if [ "$check" -eq 0 ]; then
  "$clang_format" -i --style=file "${files[@]}"
  echo "format.sh: formatted ${#files[@]} files under ${paths[*]}"
  exit 0
fi

unformatted=()
for file in "${files[@]}"; do
  if ! "$clang_format" --style=file "$file" | cmp -s - "$file"; then unformatted+=("$file"); fi
done
if [ ${#unformatted[@]} -eq 0 ]; then
  echo "format.sh: all ${#files[@]} files under ${paths[*]} are formatted"
  exit 0
fi
echo "format.sh: ${#unformatted[@]} of ${#files[@]} files are not formatted (run scripts/format.sh):"
printf '  %s\n' "${unformatted[@]}"
exit 1
