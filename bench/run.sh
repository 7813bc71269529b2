#!/usr/bin/env bash
# buildlite against buildah, same machine, same run (what `npm run bench` calls).
#
#   bench/run.sh [-n RUNS] [-w "WORKLOADS"] [--no-debian] [--no-extras]
#   bench/run.sh --rootless USER [-n RUNS] [-w "WORKLOADS"]
#
# --rootless USER: buildlite as root against buildlite run by USER (who needs a
# subordinate id range: scripts/provision.sh --rootless-user USER), no buildah,
# no extras; the harness's own table (ratios rootless/root) goes to
# bench/results/rootless-latest.txt. Its registry and state dirs are its own
# (BENCH_REGISTRY, default 127.0.0.1:5011), so it can run beside a peer bench.
#
# 1. Installs what is missing (buildah, skopeo, docker-registry, umoci, jq, ...)
#    with apt-get, as the harness's setup.sh does; bench-only, never needed by
#    buildlite itself. Run as root on Debian 12.
# 2. Compiles buildlite from this tree into bench/.dist (so a concurrent
#    `tsc` into dist/ cannot change the binary mid-run) behind a `buildlite`
#    wrapper on PATH.
# 3. Uses the peer harness where BENCH_HARNESS points (a checkout of the
#    harness, to try a newer one), else its copy in bench/harness/, always
#    with the workloads in bench/workloads/: a stage dir links the harness scripts, our workloads
#    and our buildlite adapter (bench/lib/buildlite-adapter.sh).
# 4. setup.sh (loopback registry on $BENCH_REGISTRY, base images), then
#    run.sh with BUILDERS="buildah buildlite": cold, warm, incr, push,
#    push_warm per workload, builders alternating; then lib/extras.sh
#    (N concurrent identical builds; warm registry cache + empty store).
# 5. Writes bench/results/<stamp>.jsonl (harness lines + peak RSS of the
#    buildlite process tree + extras) and bench/results/latest.md (tables of
#    medians and buildlite/buildah ratios against the targets).
set -euo pipefail
export LC_ALL=C
BENCH_HOME="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$BENCH_HOME")"
RUNS=3 WORKLOADS_ARG="" SETUP_ARGS=() EXTRAS=1 ROOTLESS_USER=
while [ $# -gt 0 ]; do
  case "$1" in
    -n) RUNS="$2"; shift 2 ;;
    -w) WORKLOADS_ARG="$2"; shift 2 ;;
    --no-debian) SETUP_ARGS+=(--no-debian); shift ;;
    --no-extras) EXTRAS=0; shift ;;
    --rootless) ROOTLESS_USER="$2"; EXTRAS=0; SETUP_ARGS+=(--no-debian); shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see -h)" >&2; exit 2 ;;
  esac
done
say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "run as root (runc, mounts, buildah)" >&2; exit 1; }

# ---- 1. packages (bench-only) ------------------------------------------------
need=()
for t in buildah:buildah skopeo:skopeo docker-registry:docker-registry umoci:umoci runc:runc jq:jq curl:curl \
         perl:perl /usr/bin/time:time column:bsdextrautils unshare:util-linux getfattr:attr; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "missing: ${need[*]}; install them (Debian package names) and rerun" >&2; exit 1; }
  say "installing (bench only): ${need[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# ---- 2. buildlite from this tree ----------------------------------------------
say "compiling buildlite into bench/.dist"
(cd "$REPO" && npx --no-install tsc -p tsconfig.json --outDir bench/.dist && node scripts/bundle.mjs --outdir bench/.dist/bundle)
mkdir -p "$BENCH_HOME/.bin"
printf '#!/bin/sh\nexec node %q "$@"\n' "$BENCH_HOME/.dist/bundle/main.js" >"$BENCH_HOME/.bin/buildlite"
chmod +x "$BENCH_HOME/.bin/buildlite"
export PATH="$BENCH_HOME/.bin:$PATH"

# ---- 3. stage: harness + our workloads + our adapter --------------------------
HARNESS="${BENCH_HARNESS:-$BENCH_HOME/harness}"
[ -f "$HARNESS/run.sh" ] || { echo "bench: no run.sh in BENCH_HARNESS=$HARNESS" >&2; exit 1; }
HARNESS="$(cd "$HARNESS" && pwd)"
STAGE="$BENCH_HOME/.stage"
rm -rf "$STAGE"; mkdir -p "$STAGE/builders"
for f in lib.sh setup.sh gen.sh run.sh steps.sh; do ln -s "$HARNESS/$f" "$STAGE/$f"; done
for f in "$HARNESS"/builders/*.sh; do ln -s "$f" "$STAGE/builders/"; done
ln -sf "$BENCH_HOME/lib/buildlite-adapter.sh" "$STAGE/builders/buildlite.sh"
# The adapters find their helpers here without resolving their own symlink (two process starts a call).
export BENCH_LIB="$BENCH_HOME/lib"
ln -sf "$BENCH_HOME/lib/buildlite-rootless-adapter.sh" "$STAGE/builders/buildlite-rootless.sh"
ln -s "$BENCH_HOME/workloads" "$STAGE/workloads"
say "harness: $HARNESS; workloads: bench/workloads"

# ---- 4. set up, run, extras -----------------------------------------------------
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$BENCH_HOME/results"; mkdir -p "$RESULTS"
export BENCH_RESULTS_DIR="$RESULTS/harness" BENCH_RSS_LOG="$RESULTS/.rss-$stamp.txt"
export QUIET_TIMEOUT="${QUIET_TIMEOUT:-3}"
: >"$BENCH_RSS_LOG"
if [ -n "$ROOTLESS_USER" ]; then
  id -u "$ROOTLESS_USER" >/dev/null || exit 2
  export BENCH_ROOTLESS_USER="$ROOTLESS_USER" BENCH_REGISTRY="${BENCH_REGISTRY:-127.0.0.1:5011}"
  export BENCH_REGISTRY_DIR="${BENCH_REGISTRY_DIR:-/tmp/bench-registry-rootless}" BENCH_STATE_DIR="${BENCH_STATE_DIR:-/tmp/bench-state-rootless}"
  export BENCH_CTX_DIR="${BENCH_CTX_DIR:-/tmp/bench-ctx-rootless}" BENCH_LOG_DIR="${BENCH_LOG_DIR:-/tmp/bench-logs-rootless}"
  "$STAGE/setup.sh" "${SETUP_ARGS[@]}"
  args=(-n "$RUNS" -b "buildlite buildlite-rootless" -w "${WORKLOADS_ARG:-multistage manyfiles runheavy incremental bigfile}")
  "$STAGE/run.sh" "${args[@]}" 2>&1 | tee "$RESULTS/rootless-latest.txt"
  rm -f "$BENCH_RSS_LOG"
  "$STAGE/setup.sh" --stop >/dev/null || true
  say "results: bench/results/rootless-latest.txt"
  exit 0
fi
"$STAGE/setup.sh" "${SETUP_ARGS[@]}"
args=(-n "$RUNS" -b "buildah buildlite")
[ -n "$WORKLOADS_ARG" ] && args+=(-w "$WORKLOADS_ARG")
"$STAGE/run.sh" "${args[@]}" 2>&1 | tee "$RESULTS/.run-$stamp.txt"
HJSON="$(ls -t "$BENCH_RESULTS_DIR"/buildah+buildlite-*.jsonl | head -1)"
EXTRA_OUT="$RESULTS/.extras-$stamp.jsonl"; : >"$EXTRA_OUT"
if [ "$EXTRAS" = 1 ]; then
  BENCH_DIR="$STAGE" RUNS="$RUNS" EXTRA_OUT="$EXTRA_OUT" BENCH_RSS_LOG=/dev/null "$BENCH_HOME/lib/extras.sh"
fi

# ---- 5. results -------------------------------------------------------------------
OUT="$RESULTS/$stamp.jsonl"
node "$BENCH_HOME/lib/report.mjs" --harness "$HJSON" --rss "$BENCH_RSS_LOG" --extras "$EXTRA_OUT" \
  --jsonl "$OUT" --md "$RESULTS/latest.md" --command "npm run bench -- -n $RUNS${WORKLOADS_ARG:+ -w \"$WORKLOADS_ARG\"}"
rm -f "$BENCH_RSS_LOG" "$EXTRA_OUT"
say "results: $OUT and bench/results/latest.md"
