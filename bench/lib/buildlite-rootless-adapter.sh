#!/usr/bin/env bash
# Harness adapter for rootless buildlite (`bench/run.sh --rootless USER`): the
# buildlite adapter (same verbs, same peak-RSS records), with the CLI started as
# the unprivileged $BENCH_ROOTLESS_USER (lib/as-user.sh) and a state dir of
# that user's, so the run compares rootless against root on one machine.
set -euo pipefail
HERE="${BENCH_LIB:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)}"
: "${BENCH_STATE_DIR:=/tmp/bench-state}" "${BENCH_ROOTLESS_USER:?set BENCH_ROOTLESS_USER to a user with a subordinate id range}"
export BENCH_STATE_DIR="$BENCH_STATE_DIR/rootless"
export BUILDLITE="$HERE/as-user.sh"
"$HERE/buildlite-adapter.sh" "$@"
# reset made the state dir as root: it is the user's.
if [ "${1:-}" = reset ]; then chown "$BENCH_ROOTLESS_USER:" "$BENCH_STATE_DIR" "$BENCH_STATE_DIR/buildlite"; fi
