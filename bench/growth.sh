#!/usr/bin/env bash
# Growth curves (issue 18): how build, rebuild and push scale with the size of
# the context. Two dimensions:
#   files N...   contexts of N files of 1 KiB in directories of 100
#                (default 5000 20000 50000)
#   bytes S...   contexts of 16 incompressible files that add up to S
#                (e.g. 256MiB 1GiB 2GiB): an image of that size
# For each size, from an empty state root:
#   build    cold build of  FROM scratch / COPY of the tree / a one-file COPY after it
#   warm     the same build again (every step cached)
#   rebuild  one file of the tree edited (one byte, for bytes), built again
#   push     the image pushed to a loopback docker-registry (fresh repository)
# and prints wall seconds and peak RSS (MiB) of the buildlite process tree
# (lib/peak-rss.pl) per step, as a markdown table, plus build seconds per unit
# (1k files, or GiB): flat or falling means at most linear.
#
#   bash bench/growth.sh [files] [N...]     e.g. bash bench/growth.sh 5000 20000 50000
#   bash bench/growth.sh bytes S...         e.g. bash bench/growth.sh bytes 256MiB 1GiB 2GiB
#
# Needs root, runc, docker-registry, perl and `npm run build` (runs dist/bundle/main.js;
# BUILDLITE=cmd overrides). Cleans up its registry, mounts and temp dir.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
KIND=files
case "${1:-}" in files|bytes) KIND="$1"; shift ;; esac
SIZES=("$@")
if [ ${#SIZES[@]} -eq 0 ]; then
  [ "$KIND" = files ] || { echo "usage: bash bench/growth.sh bytes SIZE... (e.g. 256MiB 1GiB 2GiB)" >&2; exit 2; }
  SIZES=(5000 20000 50000)
fi
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
  "$HERE/lib/peak-rss.pl" "$rss" $BUILDLITE "$@" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v r="$(cut -d' ' -f1 "$rss")" 'BEGIN { printf "%.2f %.0f\n", b - a, r / 1024 }'
}

# the bytes a size like 256MiB, 2GiB or 1000000 stands for
to_bytes() {
  local v="$1" n u
  n="${v%%[!0-9]*}"; u="${v#"$n"}"
  case "$u" in
    "") echo "$n" ;; KiB) echo $((n << 10)) ;; MiB) echo $((n << 20)) ;; GiB) echo $((n << 30)) ;;
    *) echo "bench/growth.sh: size $v: want a number with KiB, MiB or GiB" >&2; exit 2 ;;
  esac
}

# the context of one size: tree/ (what the curve grows), last.txt and the Dockerfile
make_context() {
  local ctx="$1" size="$2"
  mkdir -p "$ctx/tree"
  if [ "$KIND" = files ]; then
    python3 - "$ctx" "$size" <<'EOF'
import os, sys
ctx, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(ctx, "tree", f"d{i // 100:04d}")
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06d}.txt"), "w") as f:
        f.write((f"{i:08d}" * 128)[:1024])
EOF
  else
    local total each i
    total="$(to_bytes "$size")"; each=$((total / 16))
    for i in $(seq -w 0 15); do head -c "$each" /dev/urandom >"$ctx/tree/blob$i.bin"; done
  fi
  printf 'FROM scratch\nCOPY tree /ctx/tree\nCOPY last.txt /ctx/last.txt\n' >"$ctx/Dockerfile"
  echo last >"$ctx/last.txt"
  sync
}

# a change the tree's COPY must see: a line appended, or one byte of a blob flipped in place
edit_context() {
  local ctx="$1"
  if [ "$KIND" = files ]; then
    echo edited >>"$ctx/tree/d0000/f000000.txt"
  else
    printf 'x' | dd of="$ctx/tree/blob07.bin" bs=1 seek=4096 conv=notrunc status=none
  fi
}

if [ "$KIND" = files ]; then unit="1k files"; else unit="GiB"; fi
echo "Growth curve ($KIND), $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(node --version)"
echo
echo "| $KIND | build s | build MiB | warm s | warm MiB | rebuild s | rebuild MiB | push s | push MiB | build s per $unit |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for n in "${SIZES[@]}"; do
  if [ "$KIND" = files ]; then units="$(awk -v n="$n" 'BEGIN { print n / 1000 }')"
  else units="$(awk -v b="$(to_bytes "$n")" 'BEGIN { print b / 1073741824 }')"; fi
  ctx="$TMP/ctx-$n" root="$TMP/state-$n" ref="127.0.0.1:$port/growth/$KIND-$(echo "$n" | tr 'A-Z' 'a-z'):1"
  make_context "$ctx" "$n"
  read -r bs bm < <(timed build --root "$root" --progress plain -t "$ref" "$ctx")
  read -r ws wm < <(timed build --root "$root" --progress plain -t "$ref" "$ctx")
  edit_context "$ctx"
  read -r rs rm_ < <(timed build --root "$root" --progress plain -t "$ref" "$ctx")
  read -r ps pm < <(timed push --root "$root" "$ref")
  awk -v n="$n" -v u="$units" -v bs="$bs" -v bm="$bm" -v ws="$ws" -v wm="$wm" -v rs="$rs" -v rm="$rm_" -v ps="$ps" -v pm="$pm" \
    'BEGIN { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.3f |\n", n, bs, bm, ws, wm, rs, rm, ps, pm, bs / u }'
  awk -v d="$root/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$ctx" "$root"
done
