import { readFileSync } from 'node:fs';

/**
 * Whether this process is root of the host or an unprivileged user, possibly
 * one that looks like root inside a user namespace (`buildlite` run as a user
 * re-executes itself in one, cli/userns-exec.ts). The executor and the
 * snapshotter read this to pick what the kernel allows there: no cgroups of
 * our own, overlay's xattrs in the `user.` namespace, runc in rootless mode.
 */

/** The initial user namespace maps every id to itself in one line. */
const IDENTITY = /^\s*0\s+0\s+4294967295\s*$/;

/** `uid_map` text that is anything but the initial namespace's identity map. */
export function isUserNamespaceMap(uidMap: string): boolean {
  const lines = uidMap.split('\n').filter((l) => l.trim() !== '');
  return !(lines.length === 1 && IDENTITY.test(lines[0]!));
}

let cached: boolean | undefined;

/** This process runs in a user namespace other than the host's (read once: a process never changes it behind our back). */
export function inUserNamespace(): boolean {
  if (cached === undefined) {
    try {
      cached = isUserNamespaceMap(readFileSync('/proc/self/uid_map', 'utf8'));
    } catch {
      // No /proc/self/uid_map: a kernel without user namespaces, so the host's.
      cached = false;
    }
  }
  return cached;
}

/** Not the host's root: an ordinary user, or root only inside a user namespace. */
export function runsRootless(): boolean {
  return process.geteuid?.() !== 0 || inUserNamespace();
}
