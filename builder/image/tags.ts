import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDigest, type Digest } from '../../core/digest.js';
import type { Descriptor } from '../../core/oci.js';

/**
 * Local image names (`-t` without `--push`): ref → manifest descriptor, in one
 * JSON file replaced atomically. `buildlite push REF` reads it.
 */
export class TagStore {
  private readonly file: string;
  constructor(root: string) {
    this.file = path.join(root, 'images.json');
  }

  async get(ref: string): Promise<Descriptor | undefined> {
    return (await this.load())[ref];
  }

  async set(refs: readonly string[], desc: Descriptor): Promise<void> {
    const all = await this.load();
    for (const r of refs) all[r] = desc;
    const tmp = `${this.file}.tmp-${process.pid}-${Date.now()}`;
    await writeFile(tmp, JSON.stringify(all, null, 1), { mode: 0o600 });
    await rename(tmp, this.file);
  }

  async list(): Promise<Record<string, Descriptor>> {
    return this.load();
  }

  /** Digests the tags keep alive, for GC. */
  async roots(): Promise<Digest[]> {
    return Object.values(await this.load()).map((d) => parseDigest(d.digest));
  }

  private async load(): Promise<Record<string, Descriptor>> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as Record<string, Descriptor>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
  }
}
