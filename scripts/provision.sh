#!/usr/bin/env bash
# Installs the Debian packages buildlite needs, when they are missing.
#
#   scripts/provision.sh [--test] [--quiet] [--rootless-user NAME]
#
#   --test   also the tools the tests use to cross-check our output (skopeo, umoci,
#            tmux) and Debian's arm64 busybox-static (test/.fixtures/, for
#            multi-platform tests)
#   --quiet  say nothing unless something has to be installed or is wrong
#   --rootless-user NAME
#            give user NAME the subordinate uid/gid ranges (/etc/subuid, /etc/subgid,
#            65536 ids each) a rootless buildlite maps; kept if NAME has them already
#
# Emulation: RUN steps of other architectures run under QEMU user emulation.
# This installs qemu-user-static, mounts binfmt_misc when it is not mounted,
# and registers the QEMU interpreter of each architecture buildlite builds
# for whose ELF magic no registration (of any name) handles yet, with the F
# flag (the kernel opens the interpreter at registration, so it works inside
# a sandbox's mount namespace). Existing registrations are never changed.
#
# Idempotent: with everything present it does nothing (and prints nothing).
# `apt-get update` runs at most once, and only when something is missing.
# Not root, or not Debian/apt: prints exactly what to install and exits 1
# without installing anything.
set -euo pipefail

want_test=0
quiet=0
rootless_user=""
while [ $# -gt 0 ]; do
  case "$1" in
    --test) want_test=1 ;;
    --quiet) quiet=1 ;;
    --rootless-user)
      [ $# -ge 2 ] && [ -n "$2" ] || { echo "provision: --rootless-user needs a user name" >&2; exit 2; }
      rootless_user=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "provision: unknown option $1 (use --test, --quiet, --rootless-user NAME)" >&2; exit 2 ;;
  esac
  shift
done

say() { [ "$quiet" = 1 ] || echo "provision: $*"; }
err() { echo "provision: $*" >&2; }

# package:probe — the probe is a command on PATH, or an absolute path that must
# exist. Probes are used where dpkg is not there (another distribution).
runtime_pkgs=(
  runc:runc                          # the sandbox for RUN steps
  docker-registry:docker-registry    # a real registry for tests and local use
  redis-server:redis-server          # the queue and event streams in service mode
  busybox-static:/bin/busybox        # the bundled example's base image
  attr:getfattr                      # xattr checks on unpacked layers
  iproute2:ip                        # loopback up inside network=none sandboxes
  util-linux:setpriv                 # runc run dies with the process that started it (--pdeathsig)
  xz-utils:xz                        # ADD of .tar.xz
  bzip2:bzip2                        # ADD of .tar.bz2
  zstd:zstd                          # zstd layers of base images, ADD of .tar.zst
  openssl:openssl                    # test CAs for TLS registries
  curl:curl
  ca-certificates:/etc/ssl/certs/ca-certificates.crt
  python3:python3                    # the conformance harness
  git:git                            # git sources: ADD <git url>, git build contexts
  openssh-client:ssh-agent           # git over ssh; ssh-agent for build --ssh ID=KEYFILE
  uidmap:newuidmap                   # rootless: maps a user's /etc/subuid range into the builder's user namespace
  qemu-user-static:qemu-aarch64-static  # RUN steps of other architectures (user emulation)
)
test_pkgs=(
  skopeo:skopeo                      # independent registry client to cross-check pushes
  umoci:umoci                        # independent unpacker to cross-check images
  tmux:tmux                          # drives the tty progress view in CLI tests
)

pkgs=("${runtime_pkgs[@]}")
[ "$want_test" = 1 ] && pkgs+=("${test_pkgs[@]}")

is_debian=0
if [ -r /etc/debian_version ] && command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  is_debian=1
fi

has_pkg() {
  local name=${1%%:*} probe=${1#*:}
  if [ "$is_debian" = 1 ]; then
    # The package itself, not a look-alike binary: busybox-static must be static.
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'install ok installed'
  elif [[ "$probe" == /* ]]; then
    [ -e "$probe" ]
  else
    command -v "$probe" >/dev/null 2>&1
  fi
}

node_problem=""
check_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    node_problem="Node.js and npm were not found."
    return
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 20 ]; then
    node_problem="Node.js $(node --version) is too old."
  fi
}

missing=()
for p in "${pkgs[@]}"; do
  has_pkg "$p" || missing+=("${p%%:*}")
done
check_node

node_help() {
  err "$node_problem buildlite needs Node.js 20 or newer (with npm)."
  err "  Install Node.js 20 or newer, then run this again. Debian 12's own 'nodejs'"
  err "  package is version 18, which is too old."
}

# Node first: without it nothing else is of use, and we do not half-provision.
if [ -n "$node_problem" ]; then
  node_help
  [ "${#missing[@]}" = 0 ] || err "also missing (Debian packages): ${missing[*]}"
  exit 1
fi

# QEMU interpreters, by the names of Debian's /usr/lib/binfmt.d/qemu-NAME.conf,
# for the architectures of core/platform.ts (the host's own has no file).
binfmt_names=(aarch64 arm i386 ppc64le s390x riscv64 mips64el loongarch64)
binfmt_dir=/proc/sys/fs/binfmt_misc

# The magic of a qemu-NAME.conf line (:name:M::magic:mask:interp:flags), as the
# kernel prints it in binfmt_misc/ENTRY ("magic 7f454c46..."): lower-case hex.
conf_magic() {
  printf '%s' "$(cut -d: -f5 "$1")" | sed 's/\\x//g' | tr 'A-F' 'a-f'
}

# True when an enabled registration of any name already handles this magic.
magic_handled() {
  local magic=$1 f
  for f in "$binfmt_dir"/*; do
    case "${f##*/}" in register|status) continue ;; esac
    [ -r "$f" ] || continue
    grep -qx 'enabled' "$f" 2>/dev/null || continue
    grep -qx "magic $magic" "$f" 2>/dev/null && return 0
  done
  return 1
}

binfmt_todo=()
binfmt_mount=0
check_binfmt() {
  binfmt_todo=()
  binfmt_mount=0
  if [ ! -e "$binfmt_dir/register" ]; then
    binfmt_mount=1
  fi
  local n conf
  for n in "${binfmt_names[@]}"; do
    conf=/usr/lib/binfmt.d/qemu-$n.conf
    [ -r "$conf" ] || continue
    # A registration of that name, enabled or not, is someone's choice: leave it.
    [ -e "$binfmt_dir/qemu-$n" ] && continue
    if [ "$binfmt_mount" = 1 ] || ! magic_handled "$(conf_magic "$conf")"; then
      binfmt_todo+=("$n")
    fi
  done
}

setup_binfmt() {
  check_binfmt
  [ "$binfmt_mount" = 0 ] && [ "${#binfmt_todo[@]}" = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    err "QEMU interpreters are not registered with binfmt_misc (${binfmt_todo[*]}); as root, run: bash scripts/provision.sh"
    return 1
  fi
  if [ "$binfmt_mount" = 1 ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt_dir" || { err "cannot mount binfmt_misc on $binfmt_dir"; return 1; }
    say "mounted binfmt_misc on $binfmt_dir"
    check_binfmt
  fi
  local n line flags
  for n in "${binfmt_todo[@]}"; do
    line=$(head -n1 "/usr/lib/binfmt.d/qemu-$n.conf")
    flags=${line##*:}
    # F: the interpreter is opened now, so a step's own root need not hold it.
    case "$flags" in *F*) ;; *) line="${line}F" ;; esac
    printf '%s' "$line" > "$binfmt_dir/register" || { err "cannot register qemu-$n with binfmt_misc"; return 1; }
  done
  [ "${#binfmt_todo[@]}" = 0 ] || say "registered QEMU interpreters: ${binfmt_todo[*]}"
}

# Debian's busybox-static for arm64: the tests' foreign base image. Downloaded
# (not installed) into test/.fixtures, which git ignores.
fixtures_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/test/.fixtures"
arm64_busybox="$fixtures_dir/busybox-arm64"
fetch_fixtures() {
  [ "$want_test" = 1 ] || return 0
  [ -x "$arm64_busybox" ] && return 0
  if [ "$is_debian" != 1 ] || [ "$(id -u)" != 0 ]; then
    err "the arm64 busybox-static test fixture is missing; as root on Debian, run: bash scripts/provision.sh --test"
    return 1
  fi
  say "downloading busybox-static:arm64 into $fixtures_dir"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get "${apt_quiet[@]}" update
  fi
  local tmpd
  tmpd=$(mktemp -d)
  (cd "$tmpd" && apt-get "${apt_quiet[@]}" download busybox-static:arm64 >/dev/null) || { rm -rf "$tmpd"; err "apt-get download busybox-static:arm64 failed"; return 1; }
  dpkg-deb -x "$tmpd"/busybox-static_*_arm64.deb "$tmpd/x"
  mkdir -p "$fixtures_dir"
  install -m 0755 "$tmpd/x/bin/busybox" "$arm64_busybox.tmp"
  mv "$arm64_busybox.tmp" "$arm64_busybox"
  rm -rf "$tmpd"
}

apt_quiet=()
[ "$quiet" = 1 ] && apt_quiet=(-qq)

# A rootless user's subordinate ids (cli/subids.ts reads them): 65536 of each,
# above every range already given to anyone, so no two users share an id.
SUBIDS=65536
has_subids() { # file user
  local uid
  uid=$(id -u "$2")
  awk -F: -v u="$2" -v id="$uid" -v n="$SUBIDS" '($1 == u || $1 == id) && $3 >= n { found = 1 } END { exit !found }' "$1" 2>/dev/null
}
free_subid_start() { # the first id past every range of both files, at least 100000
  cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: 'BEGIN { m = 100000 } NF >= 3 && $2 + $3 > m { m = $2 + $3 } END { print m }'
}
provision_rootless_user() {
  local u=$1
  if ! id -u "$u" >/dev/null 2>&1; then
    err "--rootless-user $u: no such user"
    exit 1
  fi
  if has_subids /etc/subuid "$u" && has_subids /etc/subgid "$u"; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    err "--rootless-user $u: giving a user subordinate ids needs root"
    exit 1
  fi
  local start end
  start=$(free_subid_start)
  end=$((start + SUBIDS - 1))
  has_subids /etc/subuid "$u" || usermod --add-subuids "$start-$end" "$u"
  has_subids /etc/subgid "$u" || usermod --add-subgids "$start-$end" "$u"
  say "user $u: subordinate uids and gids $start-$end (/etc/subuid, /etc/subgid)"
}

if [ "${#missing[@]}" = 0 ]; then
  setup_binfmt
  fetch_fixtures
  [ -z "$rootless_user" ] || provision_rootless_user "$rootless_user"
  exit 0
fi

if [ "$is_debian" != 1 ] || [ "$(id -u)" != 0 ]; then
  if [ "$is_debian" != 1 ]; then
    err "this is not a Debian-like system with apt; install these packages (Debian names) with your package manager:"
  else
    err "not running as root; these packages are missing:"
  fi
  err "  ${missing[*]}"
  err "on Debian 12, as root:"
  err "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  exit 1
fi

say "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get "${apt_quiet[@]}" update
# Services some of these packages start (redis, the registry) are not needed:
# tests start their own on free ports. policy-rc.d is not touched on purpose.
apt-get "${apt_quiet[@]}" install -y --no-install-recommends "${missing[@]}"

still=()
for p in "${pkgs[@]}"; do
  has_pkg "$p" || still+=("${p%%:*}")
done
if [ "${#still[@]}" != 0 ]; then
  err "apt-get finished but these are still missing: ${still[*]}"
  exit 1
fi
say "installed: ${missing[*]}"
setup_binfmt
fetch_fixtures
[ -z "$rootless_user" ] || provision_rootless_user "$rootless_user"
