#!/usr/bin/perl
# peak-rss.pl OUT_FILE CMD...: runs CMD in a session of its own and polls the
# RSS of every process in that session (the builder and all it spawned: runc,
# mount, the sandboxed step) every PEAK_RSS_INTERVAL seconds (default 0.1).
# Appends "<peak KiB of the whole tree> <peak KiB of the largest process>" to
# OUT_FILE, after $PEAK_RSS_PREFIX and a space when that is set; exits with
# CMD's status. GNU time's %M sees only the largest single
# process, which hides a tree that is heavy in sum.
#
# One process does it all (fork, new process group, exec, poll, wait), with
# no modules (POSIX alone costs 15 ms to load): this machine pays ~10 ms per
# process start, and the shell version (bash, mktemp, setsid, perl, cat, rm)
# cost ~35 ms of every timed step. CMD's exit is noticed at once: the poll
# sleeps in a select() that SIGCHLD interrupts. The tree is CMD's process group
# (runc puts containers in sessions of their own either way).
use strict;
use warnings;

my $out = shift @ARGV;
die "usage: peak-rss.pl OUT_FILE CMD...\n" unless defined $out && @ARGV;
my $interval = $ENV{PEAK_RSS_INTERVAL} || 0.1;

my $done = 0;
$SIG{CHLD} = sub { $done = 1 };
my $pid = fork();
die "fork: $!\n" unless defined $pid;
if ($pid == 0) {
  setpgrp(0, 0);
  { no warnings 'exec'; exec { $ARGV[0] } @ARGV; }
  print STDERR "exec $ARGV[0]: $!\n";
  exit 127;
}

my ($peak, $big) = (0, 0);
my $status;
while (1) {
  # Sleep first: a scan of /proc at once would compete with the builder starting up.
  select(undef, undef, undef, $interval) unless $done;
  my $r = waitpid($pid, 1);    # WNOHANG
  if ($r == $pid) { $status = $?; last; }
  my ($sum, $max) = (0, 0);
  opendir(my $d, "/proc") or last;
  for my $p (grep { /^\d+$/ } readdir $d) {
    open(my $fh, "<", "/proc/$p/status") or next;
    my ($pgrp, $kib) = (-1, 0);
    while (my $line = <$fh>) {
      if ($line =~ /^NSpgid:\s+(\d+)/) { $pgrp = $1 }
      elsif ($line =~ /^VmRSS:\s+(\d+) kB/) { $kib = $1; last }
    }
    close $fh;
    next unless $pgrp == $pid;
    $sum += $kib;
    $max = $kib if $kib > $max;
  }
  closedir $d;
  $peak = $sum if $sum > $peak;
  $big = $max if $max > $big;
}
$status = (waitpid($pid, 0), $?)[1] unless defined $status;
open(my $fh, ">>", $out) or die "cannot append to $out: $!\n";
print $fh (defined $ENV{PEAK_RSS_PREFIX} ? "$ENV{PEAK_RSS_PREFIX} " : ''), "$peak $big\n";
close $fh;
exit($status & 127 ? 128 + ($status & 127) : $status >> 8);
