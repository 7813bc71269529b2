import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { BuildliteError, type ErrorCode } from './errors.js';
import type { Mount } from './mount.js';

const run = promisify(execFile);

export class MountError extends BuildliteError {
  readonly code: ErrorCode = 'SANDBOX';
}

/**
 * Mount `m` at `target` with mount(8). Node has no mount(2); a mount process
 * costs ~3 ms here (shared/bench results), small next to a step.
 */
export async function mountAt(m: Mount, target: string): Promise<void> {
  const args = ['-t', m.type];
  if (m.options.length > 0) args.push('-o', m.options.join(','));
  args.push(m.source, target);
  try {
    await run('mount', args, { timeout: 30_000 });
  } catch (err) {
    throw new MountError(`mount ${m.type} at ${target} failed: ${stderrOf(err)}`, { cause: err });
  }
}

/** Unmount `target`; a target that is not mounted counts as success. Lazy detach when busy. */
export async function unmountAt(target: string): Promise<void> {
  try {
    await run('umount', [target], { timeout: 30_000 });
  } catch (err) {
    const msg = stderrOf(err);
    if (/not mounted|no mount point|not found/i.test(msg)) return;
    // A process that outlived its step may still hold the mount; detach it so
    // the directory can be removed, the kernel frees it when the holder exits.
    try {
      await run('umount', ['-l', target], { timeout: 30_000 });
    } catch (err2) {
      throw new MountError(`umount ${target} failed: ${stderrOf(err2)}`, { cause: err2 });
    }
  }
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

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr?.trim() || e.message || String(err)).slice(0, 500);
}
