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
# (plus a ps) to every timed step, which on 0.2 s steps was a 50 % bias. The
# poller is one perl process reading /proc: a ps, an awk and a sleep forked
# every tick competed for the two cores with the build being timed.
set -uo pipefail
out="$1"; shift
: "${PEAK_RSS_INTERVAL:=0.1}"
setsid "$@" &
pid=$!
poll_file=$(mktemp)
PAGE_KIB=$(( $(getconf PAGESIZE) / 1024 )) perl -e '
  my ($sid, $file, $interval) = @ARGV;
  my ($peak, $big) = (0, 0);
  my $save = sub { open(my $fh, ">", $file) or return; print $fh "$peak $big\n"; close $fh; };
  $SIG{TERM} = sub { $save->(); exit 0 };
  $save->();
  # Sleep first: a scan of /proc at once would compete with the builder starting up.
  while (select(undef, undef, undef, $interval), kill 0, $sid) {
    my ($sum, $max) = (0, 0);
    opendir(my $d, "/proc") or last;
    for my $p (grep { /^\d+$/ } readdir $d) {
      open(my $fh, "<", "/proc/$p/stat") or next;
      my $stat = <$fh>; close $fh;
      next unless defined $stat && $stat =~ /\)\s(.*)$/;
      my @f = split / /, $1;   # f[0] is field 3 (state): session is field 6, rss (pages) field 24
      next unless $f[3] == $sid;
      my $kib = $f[21] * $ENV{PAGE_KIB};
      $sum += $kib; $max = $kib if $kib > $max;
    }
    closedir $d;
    $peak = $sum if $sum > $peak; $big = $max if $max > $big;
    $save->();
  }
  $save->();
' "$pid" "$poll_file" "$PEAK_RSS_INTERVAL" &
poller=$!
wait "$pid"; rc=$?
kill -TERM "$poller" 2>/dev/null
wait "$poller" 2>/dev/null
# A run shorter than perl's start-up leaves the file empty: record it as unmeasured (0).
if [ -s "$poll_file" ]; then cat "$poll_file" >>"$out"; else echo "0 0" >>"$out"; fi
rm -f "$poll_file"
exit "$rc"
