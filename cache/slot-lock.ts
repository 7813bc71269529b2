import { open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno, unlinkQuiet } from '../core/fs-util.js';

/**
 * Cross-process side of cache-mount sharing: several worker processes on one
 * machine share a state root. Files in `dir`:
 *
 *   <n>.x          an exclusive holder of slot n (content: its pid)
 *   <n>.s.<pid>    process <pid> has shared users on slot n
 *
 * Each side writes its own marker first and then looks for the other's, so two
 * racing processes may both back off (and retry) but never both enter. A marker
 * whose pid is dead is stale (a killed worker) and is removed.
 */
export class SlotLocks {
  /** Exclusive locks this process holds: a lock file with our pid that is not here is a previous life's. */
  private readonly held = new Set<number>();

  constructor(private readonly dir: string) {}

  async tryExclusive(n: number): Promise<boolean> {
    const path = join(this.dir, `${n}.x`);
    for (;;) {
      try {
        const h = await open(path, 'wx', 0o600);
        try {
          await h.writeFile(String(process.pid));
        } finally {
          await h.close();
        }
        break;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
        if (this.held.has(n) || !(await this.removeIfStale(path))) return false;
      }
    }
    if (await this.otherSharers(n)) {
      await unlinkQuiet(path);
      return false;
    }
    this.held.add(n);
    return true;
  }

  async releaseExclusive(n: number): Promise<void> {
    this.held.delete(n);
    await unlinkQuiet(join(this.dir, `${n}.x`));
  }

  async tryShared(n: number): Promise<boolean> {
    const marker = join(this.dir, `${n}.s.${process.pid}`);
    const h = await open(marker, 'w', 0o600);
    await h.close();
    const x = join(this.dir, `${n}.x`);
    const pid = await readPid(x);
    if (pid !== undefined && (pid === process.pid ? this.held.has(n) : isAlive(pid))) {
      await unlinkQuiet(marker);
      return false;
    }
    if (pid !== undefined) await unlinkQuiet(x);
    return true;
  }

  async releaseShared(n: number): Promise<void> {
    await unlinkQuiet(join(this.dir, `${n}.s.${process.pid}`));
  }

  private async otherSharers(n: number): Promise<boolean> {
    const prefix = `${n}.s.`;
    for (const name of await readdir(this.dir)) {
      if (!name.startsWith(prefix)) continue;
      const pid = Number(name.slice(prefix.length));
      if (pid === process.pid) continue;
      if (Number.isInteger(pid) && isAlive(pid)) return true;
      await unlinkQuiet(join(this.dir, name));
    }
    return false;
  }

  private async removeIfStale(path: string): Promise<boolean> {
    const pid = await readPid(path);
    if (pid === undefined) {
      // Empty: its writer is between create and write, or died there; only old ones are stale.
      const st = await stat(path).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs < 5000) return false;
    } else if (pid !== process.pid && isAlive(pid)) {
      return false;
    }
    try {
      await unlink(path);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    return true;
  }
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}
