#!/usr/bin/env bash
# Growth curve (issue 18): how build, rebuild and push scale with the number of
# files in the context. For each size (default 5000 20000 50000 files of 1 KiB
# in directories of 100), from an empty state root:
#   build    cold build of  FROM scratch / COPY . /ctx / a one-file COPY after it
#   warm     the same build again (every step cached)
#   rebuild  one file of the tree edited, built again
#   push     the image pushed to a loopback docker-registry (fresh repository)
# and prints wall seconds and peak RSS (MiB) of the buildlite process tree
# (lib/peak-rss.sh) per step, as a markdown table, plus the ratio time/files
# against the smallest size (flat = linear).
#
#   bash bench/growth.sh [SIZES...]      e.g. bash bench/growth.sh 5000 20000 50000
#
# Needs root, runc, docker-registry, perl and `npm run build` (runs dist/bundle/main.js;
# BUILDLITE=cmd overrides). Cleans up its registry, mounts and temp dir.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(5000 20000 50000)
BUILDLITE="${BUILDLITE:-node $REPO/dist/bundle/main.js}"
TMP="$(mktemp -d /var/tmp/bl-growth-XXXXXX)"
REG_PID=""
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
  awk -v d="$TMP/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$TMP"
}
trap cleanup EXIT
[ -n "${GROWTH_DEBUG:-}" ] && set -x

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$TMP/reg.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $TMP/registry}}
http: {addr: 127.0.0.1:$port}
EOF
docker-registry serve "$TMP/reg.yml" >/dev/null 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# "<seconds> <tree MiB>" of one buildlite command
timed() {
  local rss="$TMP/rss" t0 t1
  : >"$rss"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$HERE/lib/peak-rss.sh" "$rss" $BUILDLITE "$@" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v r="$(cut -d' ' -f1 "$rss")" 'BEGIN { printf "%.2f %.0f\n", b - a, r / 1024 }'
}

echo "Growth curve, $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(node --version)"
echo
echo "| files | build s | build MiB | warm s | warm MiB | rebuild s | rebuild MiB | push s | push MiB | build s per 1k files |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in "${SIZES[@]}"; do
  ctx="$TMP/ctx-$n" root="$TMP/state-$n" ref="127.0.0.1:$port/growth/n$n:1"
  mkdir -p "$ctx"
  python3 - "$ctx" "$n" <<'EOF'
import os, sys
ctx, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(ctx, "tree", f"d{i // 100:04d}")
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.txt"), "w") as f:
        f.write((f"{i:08d}" * 128)[:1024])
EOF
  printf 'FROM scratch\nCOPY tree /ctx/tree\nCOPY last.txt /ctx/last.txt\n' >"$ctx/Dockerfile"
  echo last >"$ctx/last.txt"
  sync
  read -r bs bm < <(timed build --root "$root" --progress plain -t "$ref" "$ctx")
  read -r ws wm < <(timed build --root "$root" --progress plain -t "$ref" "$ctx")
  echo edited >>"$ctx/tree/d0000/f000000.txt"
  read -r rs rm_ < <(timed build --root "$root" --progress plain -t "$ref" "$ctx")
  read -r ps pm < <(timed push --root "$root" "$ref")
  awk -v n="$n" -v bs="$bs" -v bm="$bm" -v ws="$ws" -v wm="$wm" -v rs="$rs" -v rm="$rm_" -v ps="$ps" -v pm="$pm" \
    'BEGIN { printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %.3f |\n", n, bs, bm, ws, wm, rs, rm, ps, pm, bs / (n / 1000) }'
  awk -v d="$root/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$ctx" "$root"
done
