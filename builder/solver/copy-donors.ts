import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileAction } from '../graph/index.js';

/**
 * The snapshot each COPY last produced, by what the COPY is (its parent
 * snapshot and its actions, not the content it copied): when the content
 * changes, the next run links its unchanged files from that snapshot
 * (file-ops/reuse.ts). A record whose snapshot was pruned is simply unused;
 * one file per COPY, replaced atomically.
 */
export class CopyDonors {
  constructor(private readonly dir: string) {}

  keyOf(parent: string | null, actions: readonly FileAction[]): string {
    return createHash('sha256').update(JSON.stringify({ parent, actions })).digest('hex');
  }

  async get(key: string): Promise<string | undefined> {
    const name = (await readFile(path.join(this.dir, key), 'utf8').catch(() => '')).trim();
    return name === '' ? undefined : name;
  }

  async set(key: string, snapshot: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(this.dir, `.${key}.${randomUUID()}`);
    await writeFile(tmp, `${snapshot}\n`, { mode: 0o600 });
    await rename(tmp, path.join(this.dir, key));
  }
}
