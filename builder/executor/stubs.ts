import { lutimes, readdir, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { lstatOrUndefined, resolveInRoot } from '../../core/safe-path.js';

interface Stub {
  /** Relative to the rootfs, after resolving links inside it. */
  readonly rel: string;
  /** The parent's times (seconds, µs precision) before the step, restored once the stub is gone. */
  readonly parentTimes?: { atime: number; mtime: number };
}

/**
 * runc creates a missing mount destination (an empty file or dir) in the
 * rootfs, and that stub would land in the step's layer: an /etc/hosts the
 * image never had, or the name of a secret. Like BuildKit's mount-stub
 * cleaner, we note before the run which path components do not exist and,
 * after the container is gone, remove those that are still empty stubs,
 * deepest first, and put the parent's times back.
 */
export class MountStubs {
  private readonly stubs: Stub[] = [];

  private constructor(private readonly root: string) {}

  static async record(root: string, destinations: readonly string[]): Promise<MountStubs> {
    const stubs = new MountStubs(path.resolve(root));
    const seen = new Set<string>();
    for (const dest of destinations) {
      // Resolve as runc will (links followed, confined to the root), then walk up to the first existing dir.
      const resolved = await resolveInRoot(stubs.root, dest);
      const rel = path.relative(stubs.root, resolved);
      const parts = rel.split(path.sep).filter((p) => p.length > 0);
      for (let i = 1; i <= parts.length; i++) {
        const relPrefix = parts.slice(0, i).join('/');
        if (exists(path.join(stubs.root, relPrefix))) continue;
        if (!seen.has(relPrefix)) {
          seen.add(relPrefix);
          const parent = path.join(stubs.root, ...parts.slice(0, i - 1));
          const st = lstatOrUndefined(parent);
          stubs.stubs.push({ rel: relPrefix, ...(st ? { parentTimes: { atime: st.atimeMs / 1000, mtime: st.mtimeMs / 1000 } } : {}) });
        }
        // Everything below a missing component is missing too; its parent times are not worth keeping.
        for (let j = i + 1; j <= parts.length; j++) {
          const below = parts.slice(0, j).join('/');
          if (!seen.has(below)) {
            seen.add(below);
            stubs.stubs.push({ rel: below });
          }
        }
        break;
      }
    }
    return stubs;
  }

  get paths(): readonly string[] {
    return this.stubs.map((s) => `/${s.rel}`);
  }

  /** Call only once nothing runs in the rootfs any more. Never follows a last link; keeps anything non-empty. */
  async clean(): Promise<void> {
    const deepestFirst = [...this.stubs].sort((a, b) => b.rel.split('/').length - a.rel.split('/').length);
    for (const stub of deepestFirst) {
      const host = await resolveInRoot(this.root, stub.rel, false);
      const st = lstatOrUndefined(host);
      if (!st) continue;
      if (st.isFile() && st.size === 0) await unlink(host);
      else if (st.isDirectory() && (await readdir(host)).length === 0) await rmdir(host);
      else continue;
      if (stub.parentTimes) {
        const parent = path.dirname(host);
        const pst = lstatOrUndefined(parent);
        if (pst?.isDirectory()) await lutimes(parent, stub.parentTimes.atime, stub.parentTimes.mtime);
      }
    }
  }
}

// Synchronous: a dozen lstats per step, each cheaper than a thread-pool round trip.
function exists(p: string): boolean {
  return lstatOrUndefined(p) !== undefined;
}
