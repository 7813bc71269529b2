#!/usr/bin/env bash
# Import-rule check (STYLE.md §4.2 + no cycles), with dependency-cruiser.
# It reads the compiled dist/ tree: see the top of .dependency-cruiser.cjs for why.
# Usage: scripts/depcheck.sh [--no-build]   (--no-build: dist/ was just built)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "depcheck: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ "$build" = 1 ]; then
  # A clean build: a stale dist/ file of a deleted source would be checked too.
  rm -rf dist
  node_modules/.bin/tsc -p tsconfig.json
fi

dirs=()
for d in core builder registry-client cache worker api cli; do
  [ -d "dist/$d" ] && dirs+=("dist/$d")
done
if [ "${#dirs[@]}" = 0 ]; then
  echo "depcheck: nothing compiled under dist/; run the build first" >&2
  exit 1
fi

exec node_modules/.bin/depcruise --config .dependency-cruiser.cjs --output-type err "${dirs[@]}"
