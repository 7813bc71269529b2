import { lstat, mkdir, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { resolveInRoot } from '../../core/safe-path.js';

/** A mount target that did not exist, and the topmost of its ancestors that did not either. */
export interface Stub {
  readonly target: string;
  readonly top: string;
}

/**
 * Mount targets that do not exist in the rootfs make runc create stubs there;
 * BuildKit removes them so a `--mount` leaves nothing in the layer. Note them
 * before the run; after it, remove the target if it is still an empty stub and
 * then each created parent up to `top` while it is empty (the step may have put
 * files there, which stay).
 */
export async function missingTargets(rootDir: string, targets: readonly string[]): Promise<Stub[]> {
  const stubs: Stub[] = [];
  for (const t of targets) {
    const parts = path.posix.normalize(t).split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = '/' + parts.slice(0, i).join('/');
      try {
        await lstat(await resolveInRoot(rootDir, p, false));
      } catch {
        stubs.push({ target: '/' + parts.join('/'), top: p });
        break;
      }
    }
  }
  return stubs;
}

export async function removeStubs(rootDir: string, stubs: readonly Stub[]): Promise<void> {
  for (const s of stubs) {
    let p = s.target;
    for (;;) {
      await removeIfEmpty(await resolveInRoot(rootDir, p, false));
      if (p === s.top || p === '/') break;
      p = path.posix.dirname(p);
    }
  }
}

async function removeIfEmpty(host: string): Promise<void> {
  let st;
  try {
    st = await lstat(host);
  } catch {
    return;
  }
  if (st.isDirectory()) await rmdir(host).catch(() => undefined);
  else if (st.isFile() && st.size === 0) await unlink(host);
}

export async function ensureDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}
