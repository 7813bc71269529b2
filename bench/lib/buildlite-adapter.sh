#!/usr/bin/env bash
# Harness adapter for buildlite (same verbs as the harness's builders/buildah.sh):
#   version | describe | reset | build DOCKERFILE CONTEXT REF | push REF
# State (store, cache, runc root) lives in $BENCH_STATE_DIR/buildlite, so reset
# empties every cache. Every build records the peak RSS of the whole process
# tree (lib/peak-rss.pl: runc and the steps are children) as one line of
# $BENCH_RSS_LOG:
#   <verb> <ref> <tree KiB> <largest process KiB>
# A push is one process, which the harness's GNU time measures for both
# builders, so it runs bare: the poller is a process of ours the peer does not
# pay (5.5 ms a call here, most of a re-push's gap to buildah). No other
# process is started around the builder: each costs ~10 ms here.
set -euo pipefail
HERE="${BENCH_LIB:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)}"
: "${BENCH_STATE_DIR:=/tmp/bench-state}" "${BENCH_RSS_LOG:=/dev/null}" "${BENCH_REGISTRY:=127.0.0.1:5001}"
: "${BUILDLITE:=buildlite}"
STATE="$BENCH_STATE_DIR/buildlite"
# The bin's V8 code cache (cli/boot.ts) lives with the bench's state, as
# buildah's caches live under its own dir: otherwise a run inherits whatever
# the machine's last commands left in ~/.cache (a test run's tiny builds made
# one that cost every warm build ~30 ms). `reset` keeps it: it is the
# installed CLI's, not the build cache.
export XDG_CACHE_HOME="$BENCH_STATE_DIR/xdg-cache"

record() { # VERB REF CMD...
  local verb="$1" ref="$2"; shift 2
  PEAK_RSS_PREFIX="$verb $ref" "$HERE/peak-rss.pl" "$BENCH_RSS_LOG" "$@"
}

verb="${1:-}"; shift || true
case "$verb" in
  version) "$BUILDLITE" --version 2>&1 | head -1 ;;
  describe) echo "buildlite build --root STATE --progress plain (local store, runc); push: buildlite push --root STATE REF" ;;
  reset)
    # an interrupted run may leave mounts under the state dir: deepest first
    awk -v d="$STATE/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$STATE"; mkdir -p "$STATE" ;;
  build)
    [ -d "$STATE" ] || mkdir -p "$STATE"
    record build "$3" "$BUILDLITE" build --root "$STATE" --progress plain ${BUILDLITE_EXTRA:-} -f "$1" -t "$3" "$2" ;;
  push) exec "$BUILDLITE" push --root "$STATE" "$1" ;;
  *) echo "usage: $0 version|describe|reset|build DOCKERFILE CONTEXT REF|push REF" >&2; exit 2 ;;
esac
