import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import path from 'node:path';
import { BuildliteError, type ErrorCode } from './errors.js';

export class UnsafePathError extends BuildliteError {
  readonly code: ErrorCode = 'UNSAFE_PATH';
}

/** Linux allows 40 symlink hops per lookup; we allow the same before calling it a loop. */
const MAX_SYMLINK_HOPS = 40;

/**
 * Resolve `unsafePath` (relative to root, or absolute meaning "from root") to a
 * host path inside `root`, following symlinks as if `root` were `/`
 * (like securejoin / chroot lookup): `..` stops at root, absolute link targets
 * restart at root. The last component is followed only when `followLast`.
 * Components that do not exist yet are appended lexically, so the result is
 * always inside root. The check holds at the moment of the call; callers that
 * then write must not follow links again (use O_NOFOLLOW-style calls or
 * re-resolve), which is why writers lstat before writing.
 */
export async function resolveInRoot(root: string, unsafePath: string, followLast = true): Promise<string> {
  const rootAbs = path.resolve(root);
  let pending = splitPath(unsafePath);
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.' || part === '') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(rootAbs, ...done, part);
    const isLast = pending.length === 0;
    if (isLast && !followLast) {
      done.push(part);
      break;
    }
    // Synchronous: one lstat per component is ~µs, and an await each (a thread-pool
    // round trip) cost more than the lookups themselves on every COPY and step.
    const st = lstatOrUndefined(candidate);
    if (!st) {
      done.push(part);
      continue;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw new UnsafePathError(`too many levels of symbolic links resolving ${unsafePath}`);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) done.length = 0;
    pending = [...splitPath(target), ...pending];
  }
  return path.join(rootAbs, ...done);
}

/** lstat in place; any failure (missing, a file used as a dir, no access) reads as "not there". */
export function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s.length > 0);
}

/** Lexically clean an in-image path to an absolute one: `a/../b/` → `/b`. Never leaves `/`. */
export function cleanAbs(p: string): string {
  return path.posix.resolve('/', p);
}

/** True when `child` is `root` or lies under it (both absolute, normalised). */
export function isWithin(root: string, child: string): boolean {
  const rel = path.relative(root, child);
  // `..foo` is a name inside root (Kubernetes writes `..data`); only `..` or `../` leaves it.
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
