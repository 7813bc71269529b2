#!/usr/bin/env bash
# Why the dirs that hold snapshots, contexts and cache mounts carry ext4's
# TOPDIR attribute (core/spread-dir.ts): on ext4 without a journal, creating a
# tree right where a tree was just deleted costs an inode-table lookup per
# recently freed inode, for every new inode.
#
#   bash bench/recent-inodes.sh [FILES] [ROUNDS]     defaults: 5000 files, 3 rounds
#
# Each round, for a parent dir without and then with TOPDIR (chattr +T), on
# the filesystem of $TMPDIR (or /tmp): untar a tree of FILES files of 1 KiB
# (in dirs of 100) into PARENT/a, delete it, then time untarring it again into
# PARENT/b-<random> (random, as snapshot dir names are: ext4 picks a top dir's
# block group starting from a hash of its name). Prints wall and system
# seconds per round, and whether the filesystem has a journal.
# Needs GNU tar, chattr and /usr/bin/time. Removes everything it made.
set -euo pipefail
FILES="${1:-5000}" ROUNDS="${2:-3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/recent-inodes-XXXXXX")"
trap 'rm -rf "$work"' EXIT

src="$work/src"
for ((i = 0; i < FILES; i++)); do
  d="$src/d$((i / 100))"
  [ $((i % 100)) -ne 0 ] || mkdir -p "$d"
  head -c 1024 /dev/zero > "$d/f$i"
done
tar -C "$src" -cf "$work/tree.tar" .
rm -rf "$src"

dev="$(df --output=source "$work" | tail -1)"
fs="$(df --output=fstype "$work" | tail -1)"
journal="unknown"
task="/sys/fs/ext4/$(basename "$dev")/journal_task"
[ -r "$task" ] && { [ "$(cat "$task")" = "<none>" ] && journal="no journal" || journal="journal"; }
echo "filesystem of $work: $fs ($journal); $FILES files per tree"
echo
echo "| round | parent | untar beside a deleted tree: wall s | system s |"
echo "| --- | --- | --- | --- |"
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in plain topdir; do
    parent="$work/$mode-$r"
    mkdir "$parent"
    if [ "$mode" = topdir ] && ! chattr +T "$parent" 2>/dev/null; then
      echo "| $r | topdir | (this filesystem has no TOPDIR attribute) | |"
      continue
    fi
    mkdir "$parent/a" && tar -C "$parent/a" -xf "$work/tree.tar" && rm -rf "$parent/a"
    b="$parent/b-$RANDOM$RANDOM"
    mkdir "$b"
    t="$( { /usr/bin/time -f '%e %S' tar -C "$b" -xf "$work/tree.tar"; } 2>&1 )"
    echo "| $r | $mode | ${t% *} | ${t#* } |"
    rm -rf "$parent"
  done
done
