import { existsSync } from 'node:fs';

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
