#!/usr/bin/env bash
# peak-rss.sh OUT_FILE CMD...: runs CMD in its own session and polls the RSS
# of every process in that session (the builder and all it spawned: runc,
# mount, the sandboxed step) every PEAK_RSS_INTERVAL seconds (default 0.1).
# Appends "<peak KiB of the whole tree> <peak KiB of the largest process>" to
# OUT_FILE; exits with CMD's status. GNU time's %M sees only the largest single
# process, which hides a tree that is heavy in sum.
#
# The poller runs beside CMD and this script waits on CMD itself, so CMD's exit
# is noticed at once: a poll loop in the foreground added up to one interval
# (plus a ps) to every timed step, which on 0.2 s steps was a 50 % bias.
set -uo pipefail
out="$1"; shift
: "${PEAK_RSS_INTERVAL:=0.1}"
setsid "$@" &
pid=$!
poll_file=$(mktemp)
(
  peak=0 big=0
  trap 'echo "$peak $big" >"$poll_file"; exit 0' TERM
  while kill -0 "$pid" 2>/dev/null; do
    read -r sum mx < <(ps -o rss= -s "$pid" 2>/dev/null | awk '{s+=$1; if ($1>m) m=$1} END{print s+0, m+0}')
    [ "${sum:-0}" -gt "$peak" ] && peak=$sum
    [ "${mx:-0}" -gt "$big" ] && big=$mx
    echo "$peak $big" >"$poll_file"
    sleep "$PEAK_RSS_INTERVAL" & wait $!
  done
) &
poller=$!
wait "$pid"; rc=$?
kill -TERM "$poller" 2>/dev/null
wait "$poller" 2>/dev/null
cat "$poll_file" >>"$out"
rm -f "$poll_file"
exit "$rc"
