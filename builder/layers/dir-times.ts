import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { builtin } from '../../core/lazy-builtins.js';

/** Directories kept in memory before the rest go to a file: a few MiB of paths. */
const IN_MEMORY = 32_768;

/**
 * The mtimes of the directories an extraction made, set once every entry is
 * in (each new child changes its directory's mtime). Past IN_MEMORY
 * directories the rest are appended to a temp file, so a layer of a million
 * directories costs no more memory than one of a thousand. The order they
 * are set in does not matter: setting a directory's times changes only its
 * own ctime, never its parent's mtime.
 */
export class DirTimes {
  private readonly mem: Array<[string, number]> = [];
  private spill: { dir: string; fd: number; file: string } | undefined;

  push(dir: string, mtime: number): void {
    if (this.mem.length < IN_MEMORY) {
      this.mem.push([dir, mtime]);
      return;
    }
    if (!this.spill) {
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'buildlite-dirtimes-'));
      const file = path.join(tmp, 'times');
      this.spill = { dir: tmp, file, fd: openSync(file, 'w', 0o600) };
    }
    // JSON: a directory name may hold a newline.
    writeSync(this.spill.fd, `${JSON.stringify([dir, mtime])}\n`);
  }

  /** Sets every recorded mtime (best effort: a directory removed since is skipped), then forgets them. */
  async apply(): Promise<void> {
    for (const [dir, mtime] of this.mem) await utimes(dir, mtime, mtime).catch(() => undefined);
    this.mem.length = 0;
    if (!this.spill) return;
    closeSync(this.spill.fd);
    this.spill.fd = -1;
    // Streamed back line by line: the file may be as big as what it keeps out of memory.
    for await (const line of builtin('node:readline').createInterface({ input: createReadStream(this.spill.file), crlfDelay: Infinity })) {
      const [dir, mtime] = JSON.parse(line) as [string, number];
      await utimes(dir, mtime, mtime).catch(() => undefined);
    }
    this.dispose();
  }

  /** Removes the spill file (also when the extraction failed). */
  dispose(): void {
    if (!this.spill) return;
    if (this.spill.fd >= 0) closeSync(this.spill.fd);
    rmSync(this.spill.dir, { recursive: true, force: true });
    this.spill = undefined;
  }
}
