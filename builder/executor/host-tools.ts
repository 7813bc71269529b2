import { existsSync } from 'node:fs';
import { ExecutorOptionError } from './errors.js';
import type { LoopbackHook } from './spec.js';

/** Host programs the executor starts are found at their usual places (a bare PATH is all runc gets). */
function first(cands: readonly string[]): string | undefined {
  return cands.find((c) => existsSync(c));
}

export function findShell(): string | undefined {
  return first(['/bin/sh', '/usr/bin/sh']);
}

/**
 * util-linux setpriv: `setpriv --pdeathsig KILL runc run …` makes the kernel
 * kill that runc the moment our process dies (~1.5 ms per step: one more
 * execve). Without it a runc killed mid-create could leave a container the
 * reaper does not see; the next sweep still removes it.
 */
export function findSetpriv(): string | undefined {
  return first(['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv']);
}

export function findLoopbackTools(): LoopbackHook {
  const sh = findShell();
  const nsenter = first(['/usr/bin/nsenter', '/bin/nsenter', '/usr/sbin/nsenter']);
  const ip = first(['/usr/sbin/ip', '/sbin/ip', '/bin/ip', '/usr/bin/ip']);
  const busybox = first(['/bin/busybox', '/usr/bin/busybox']);
  if (!sh || !nsenter || (!ip && !busybox)) {
    throw new ExecutorOptionError(
      'loopback',
      'the host needs sh, nsenter (util-linux) and ip (iproute2) or busybox to bring up loopback in the sandbox',
    );
  }
  return { sh, nsenter, ip: ip ? [ip] : [busybox!, 'ip'] };
}
