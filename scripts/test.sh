#!/usr/bin/env bash
# The test command (`npm test`): provision, install, type-check, check the
# import rules, build, run the whole suite. Exits non-zero on the first failure.
#
#   scripts/test.sh [vitest args...]    e.g. scripts/test.sh core test/infra
#
# Works from any clone location; nothing here depends on files outside the tree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

current=""
step() { current=$*; printf '\n==> %s\n' "$*"; }
started=$SECONDS
# Any failing step ends the run; say which one, last, where CI logs show it.
trap 'rc=$?; [ "$rc" = 0 ] || [ "$current" = "tests (vitest)" ] || printf "\nbuildlite test: FAIL at step \"%s\" (exit %d)\n" "$current" "$rc"' EXIT

step "system packages"
bash scripts/provision.sh --test --quiet

step "node modules"
# `npm ci`, the standard install: exactly the lock file, from scratch, when
# node_modules is missing or does not match package-lock.json (npm records
# what it installed in node_modules/.package-lock.json).
if ! node scripts/lock-in-sync.mjs; then
  npm ci --no-audit --no-fund
else
  echo "up to date"
fi

step "type-check (tsc, tests included)"
node_modules/.bin/tsc -p tsconfig.test.json --noEmit

step "import rules (dependency-cruiser, on the sources)"
# Installs its own dependency-cruiser and typescript 6 into tools/depcheck when needed.
bash scripts/depcheck.sh

step "build (tsc -> dist/)"
# A clean dist/: no file of a deleted source lingers for the CLI tests to load.
rm -rf dist
node_modules/.bin/tsc -p tsconfig.json
node scripts/bundle.mjs   # the CLI as users run it: dist/bundle/main.js

step "tests (vitest)"
# vitest prints its own summary ("Test Files ... Tests ..."); its exit code is ours.
status=0
node_modules/.bin/vitest run "$@" || status=$?

elapsed=$((SECONDS - started))
if [ "$status" = 0 ]; then
  printf '\nbuildlite test: PASS in %ds\n' "$elapsed"
else
  printf '\nbuildlite test: FAIL (vitest exit %d) in %ds\n' "$status" "$elapsed"
fi
exit "$status"
