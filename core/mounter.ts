import { readFileSync } from 'node:fs';
import { BuildliteError, type ErrorCode } from './errors.js';
import { runOnHost, type HostCommandResult } from './host-commands.js';
import type { Mount } from './mount.js';

export class MountError extends BuildliteError {
  readonly code: ErrorCode = 'SANDBOX';
}

/**
 * Mount `m` at `target` with mount(8). Node has no mount(2); the mount
 * process is started by a host-command helper (host-commands.ts), ~2 ms.
 */
export async function mountAt(m: Mount, target: string): Promise<void> {
  const args = ['-t', m.type];
  if (m.options.length > 0) args.push('-o', m.options.join(','));
  args.push(m.source, target);
  const r = await runOnHost('mount', args);
  if (r.code !== 0) throw new MountError(`mount ${m.type} at ${target} failed: ${reasonOf(r)}`);
}

/** Unmount `target`; a target that is not mounted counts as success. Lazy detach when busy. */
export async function unmountAt(target: string): Promise<void> {
  const r = await runOnHost('umount', [target]);
  if (r.code === 0) return;
  if (/not mounted|no mount point|not found/i.test(r.stderr)) return;
  // A process that outlived its step may still hold the mount; detach it so
  // the directory can be removed, the kernel frees it when the holder exits.
  const lazy = await runOnHost('umount', ['-l', target]);
  if (lazy.code !== 0) throw new MountError(`umount ${target} failed: ${reasonOf(lazy)}`);
}

/** Mount points under `prefix` (from /proc/self/mountinfo), deepest first, for sweeps and tests. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  // Read in place: procfs text generated on read, and an async readFile of it took several round trips.
  return parseMountPoints(readFileSync('/proc/self/mountinfo', 'utf8'), prefix);
}

/**
 * Mount points under `prefix` in mountinfo text, deepest first. The kernel
 * escapes space, tab, newline and backslash in paths as `\ooo`; they are
 * decoded before comparing, so a prefix with a space still matches.
 */
export function parseMountPoints(mountinfo: string, prefix: string): string[] {
  const base = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const under = base === '/' ? '/' : `${base}/`;
  const points = mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && p.length > 0)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === base || p.startsWith(under));
  return points.sort((a, b) => b.length - a.length);
}

function reasonOf(r: HostCommandResult): string {
  if (r.timedOut) return 'timed out after 30 s';
  return (r.stderr || `exit status ${r.code}`).slice(0, 500);
}
