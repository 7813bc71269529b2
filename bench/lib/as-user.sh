#!/bin/sh
# `buildlite ARGS` as $BENCH_ROOTLESS_USER: its uid, gid and groups, its home,
# and only PATH of ours (what a user's shell would start it with).
set -eu
home=$(getent passwd "$BENCH_ROOTLESS_USER" | cut -d: -f6)
exec setpriv --reuid "$BENCH_ROOTLESS_USER" --regid "$(id -g "$BENCH_ROOTLESS_USER")" --init-groups -- \
  env -i PATH="$PATH" HOME="$home" buildlite "$@"
