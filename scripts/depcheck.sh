#!/usr/bin/env bash
# Import-rule check (docs/architecture.md's table, through-index, no cycles),
# with dependency-cruiser on the .ts sources: type-only imports, `import()`
# types and dynamic imports are edges like any other. Why dependency-cruiser
# runs from its own install in tools/depcheck: the top of .dependency-cruiser.cjs.
#
#   scripts/depcheck.sh [DIR...]   DIR: a tree laid out like the repository
#                                  (default: the repository); tests plant
#                                  violations in a scratch tree this way
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tool="$repo/tools/depcheck"

# The tool has its own lock; install it exactly (npm ci) when it is missing or
# out of date, as scripts/test.sh does for the project's node_modules.
if ! node "$repo/scripts/lock-in-sync.mjs" "$tool" >/dev/null; then
  echo "depcheck: installing dependency-cruiser and typescript 6 into tools/depcheck" >&2
  npm ci --prefix "$tool" --no-audit --no-fund --loglevel=error >&2
fi

check() {
  local root=$1 dirs=()
  for d in core builder registry-client cache store worker api cli; do
    [ -d "$root/$d" ] && dirs+=("$d")
  done
  if [ "${#dirs[@]}" = 0 ]; then
    echo "depcheck: no source folder under $root" >&2
    return 1
  fi
  # Paths in the rules are relative to the tree checked, so run from its root.
  (cd "$root" && "$tool/node_modules/.bin/depcruise" --config "$repo/.dependency-cruiser.cjs" --output-type err "${dirs[@]}")
}

if [ "$#" = 0 ]; then set -- "$repo"; fi
status=0
for root in "$@"; do
  check "$root" || status=1
done
exit "$status"
