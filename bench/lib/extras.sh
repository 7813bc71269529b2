#!/usr/bin/env bash
# Scenarios the harness's run.sh does not cover, for buildah and buildlite,
# alternating, RUNS times; one JSON line per timed step into $EXTRA_OUT:
#   concurrent   CONCURRENT_N (default 4) identical cold builds of WORKLOAD at
#                once on one store (dedup, locking, a shared base pull)
#   cache_import a cache exported to the registry by one build, then a build on
#                an empty local store importing it (--cache-from): "a CI machine
#                that starts empty". Steps that report cached are counted.
# Needs the stage dir's lib.sh (BENCH_DIR) and both adapters.
set -euo pipefail
. "$BENCH_DIR/lib.sh"
: "${RUNS:=3}" "${CONCURRENT_N:=4}" "${EXTRA_WORKLOAD:=incremental}" "${EXTRA_OUT:?}"
w="$EXTRA_WORKLOAD" ctx="$BENCH_CTX_DIR/$EXTRA_WORKLOAD" ref="$BENCH_REGISTRY/bench/$EXTRA_WORKLOAD:latest"
cache_ref_buildah="$BENCH_REGISTRY/bench/cache-buildah"
cache_ref_buildlite="$BENCH_REGISTRY/bench/cache-buildlite:$EXTRA_WORKLOAD"
LOGS="$BENCH_LOG_DIR/extras-$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$LOGS"
adapter() { local b="$1"; shift; "$BENCH_DIR/builders/$b.sh" "$@"; }

emit() { jq -cn "$@" >>"$EXTRA_OUT"; }
record() { # BUILDER PHASE RUN WALL RC HITS
  emit --arg b "$1" --arg p "$2" --argjson r "$3" --argjson wall "$4" --argjson rc "$5" --argjson hits "$6" --arg w "$w" \
    '{kind:"measure", builder:$b, workload:$w, phase:$p, run:$r, wall_s:$wall, exit_code:$rc, cache_hit_lines:$hits}'
  printf '  %-10s %-12s %-13s run %d  %8.3f s  rc %s  cached lines %s\n' "$1" "$w" "$2" "$3" "$4" "$5" "$6" >&2
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.4f", b-a}'; }

concurrent() { # BUILDER RUN
  local b="$1" run="$2" t0 t1 rc=0 i pids=()
  adapter "$b" reset >/dev/null 2>&1; registry_reset_bench; sync
  t0=$EPOCHREALTIME
  for i in $(seq 1 "$CONCURRENT_N"); do
    adapter "$b" build "$ctx/Dockerfile" "$ctx" "$ref" >"$LOGS/$b-conc-r$run-$i.log" 2>&1 & pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=$?; done
  t1=$EPOCHREALTIME
  record "$b" "concurrent$CONCURRENT_N" "$run" "$(secs "$t0" "$t1")" "$rc" 0
}

cache_import() { # BUILDER RUN
  local b="$1" run="$2" t0 t1 rc log="$LOGS/$b-import-r$run.log" to from
  if [ "$b" = buildah ]; then
    to="--cache-to $cache_ref_buildah"; from="--cache-from $cache_ref_buildah"
  else
    to="--cache-to type=registry,ref=$cache_ref_buildlite,mode=max"; from="--cache-from type=registry,ref=$cache_ref_buildlite"
  fi
  adapter "$b" reset >/dev/null 2>&1; registry_reset_bench
  if ! BUILDAH_EXTRA="$to" BUILDLITE_EXTRA="$to" adapter "$b" build "$ctx/Dockerfile" "$ctx" "$ref" >"$LOGS/$b-export-r$run.log" 2>&1; then
    say "  $b: build with cache export failed (pending?): $(tail -n 3 "$LOGS/$b-export-r$run.log" | tr '\n' ' ')"
    record "$b" cache_import "$run" 0 99 0; return 0
  fi
  adapter "$b" reset >/dev/null 2>&1; sync
  t0=$EPOCHREALTIME
  set +e; BUILDAH_EXTRA="$from" BUILDLITE_EXTRA="$from" adapter "$b" build "$ctx/Dockerfile" "$ctx" "$ref" >"$log" 2>&1; rc=$?; set -e
  t1=$EPOCHREALTIME
  record "$b" cache_import "$run" "$(secs "$t0" "$t1")" "$rc" "$(grep -cE 'Using cache|CACHED' "$log" || true)"
}

for run in $(seq 1 "$RUNS"); do
  order=(buildah buildlite); [ $((run % 2)) -eq 0 ] && order=(buildlite buildah)
  for b in "${order[@]}"; do
    say "extras run $run/$RUNS  $b"
    concurrent "$b" "$run"
    cache_import "$b" "$run"
  done
done
for b in buildah buildlite; do adapter "$b" reset >/dev/null 2>&1 || true; done
registry_reset_bench
