#!/usr/bin/env bash
# README command 1: install what is missing, build buildlite, start a loopback
# registry, and build the bundled example with the embedded builder (no Redis).
#   bash scripts/quickstart.sh          # set up, build, push, print the digest
#   bash scripts/quickstart.sh --stop   # stop the registry it started
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
REGISTRY=${QUICKSTART_REGISTRY:-127.0.0.1:5000}
STATE=${QUICKSTART_STATE:-/var/lib/buildlite-quickstart}
PIDFILE="$STATE/registry.pid"

stop_registry() {
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    kill "$(cat "$PIDFILE")" && rm -f "$PIDFILE" && echo "stopped the registry on $REGISTRY"
  fi
}
if [ "${1:-}" = "--stop" ]; then stop_registry; exit 0; fi

bash scripts/provision.sh
node scripts/lock-in-sync.mjs || npm ci --no-audit --no-fund --loglevel=error  # exactly package-lock.json
npx tsc -p tsconfig.json && node scripts/bundle.mjs
buildlite() { node "$REPO/dist/bundle/main.js" "$@"; }

mkdir -p "$STATE" && chmod 700 "$STATE"
if ! curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1; then
  mkdir -p "$STATE/registry"
  cat > "$STATE/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
log:
  level: error
YAML
  nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 50); do curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "started a loopback registry on $REGISTRY (logs: $STATE/registry.log)"
fi

# The base image: Debian's static busybox, built by buildlite from scratch.
base_ctx=$(mktemp -d)
trap 'rm -rf "$base_ctx"' EXIT
cp examples/busybox-base/Dockerfile "$base_ctx/"
cp /bin/busybox "$base_ctx/busybox"
buildlite build --root "$STATE/root" --progress plain -t "$REGISTRY/library/busybox:latest" --push "$base_ctx"

buildlite build --root "$STATE/root" --progress plain \
  --build-arg "BASE=$REGISTRY/library/busybox:latest" \
  -t "$REGISTRY/examples/hello:latest" --push \
  --iidfile "$STATE/hello.digest" examples/hello

echo
echo "image digest: $(cat "$STATE/hello.digest")"
echo "pushed to:    $REGISTRY/examples/hello:latest (registry data in $STATE/registry)"
echo "inspect it:   skopeo inspect --tls-verify=false docker://$REGISTRY/examples/hello:latest"
echo "stop the registry: bash scripts/quickstart.sh --stop"
