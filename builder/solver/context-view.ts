import { constants, copyFileSync, linkSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, chmodSync, utimesSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AsyncStack } from '../../core/dispose.js';
import { PathMatcher } from '../../core/ignore.js';

/** Entries linked between two yields to the event loop. */
const YIELD_EVERY = 256;

/**
 * The build context as `RUN --mount=type=bind` sees it: without what the
 * .dockerignore excludes, as BuildKit (which never transfers those files) and
 * a service build (which never uploads them) see it. A tree of hard links
 * under tmpDir (a copy where the context is on another filesystem), removed
 * when the step's stack unwinds; the context itself is never written. FIFOs,
 * sockets and devices are left out: a step must not open them on the host.
 */
export async function contextView(contextDir: string, excludes: readonly string[], tmpDir: string, stack: AsyncStack, signal?: AbortSignal): Promise<string> {
  const matcher = new PathMatcher(excludes);
  if (matcher.empty) return contextDir;
  const root = path.join(tmpDir, `ctxview-${randomUUID()}`);
  await mkdir(root, { mode: 0o700 });
  // Nothing is ever mounted inside it (the mount is in the step's namespace), so a recursive delete is safe.
  stack.defer(() => rm(root, { recursive: true, force: true }));
  let sinceYield = 0;
  const dirMeta: Array<[string, number, Date, Date]> = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of readdirSync(path.join(contextDir, rel)).sort()) {
      if (++sinceYield >= YIELD_EVERY) {
        sinceYield = 0;
        signal?.throwIfAborted();
        await new Promise<void>((r) => setImmediate(r));
      }
      const r = rel ? `${rel}/${name}` : name;
      const src = path.join(contextDir, r);
      const dest = path.join(root, r);
      const st = lstatSync(src);
      const ignored = matcher.matches(r);
      if (st.isDirectory()) {
        if (ignored && !matcher.mayIncludeUnder(r)) continue;
        mkdirSync(dest, { mode: 0o700 });
        await walk(r);
        dirMeta.push([dest, st.mode & 0o7777, st.atime, st.mtime]);
      } else if (!ignored) {
        if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dest);
        else if (st.isFile()) linkOrCopy(src, dest, st.mode & 0o7777, st.atime, st.mtime);
      }
    }
  };
  await walk('');
  // Directories last: their own entries changed their mtimes.
  for (const [dir, mode, atime, mtime] of dirMeta) {
    chmodSync(dir, mode);
    utimesSync(dir, atime, mtime);
  }
  const top = lstatSync(contextDir);
  chmodSync(root, top.mode & 0o7777);
  utimesSync(root, top.atime, top.mtime);
  return root;
}

function linkOrCopy(src: string, dest: string, mode: number, atime: Date, mtime: Date): void {
  try {
    linkSync(src, dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    copyFileSync(src, dest, constants.COPYFILE_EXCL);
    chmodSync(dest, mode);
    utimesSync(dest, atime, mtime);
  }
}
