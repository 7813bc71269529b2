import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDigest, type Digest } from '../../core/digest.js';
import type { Descriptor } from '../../core/oci.js';
import { atomicWriteFile } from '../../cache/index.js';

/**
 * Local image names (`-t` without `--push`): ref → manifest descriptor, in one
 * JSON file replaced atomically. `buildlite push REF` reads it.
 */
export class TagStore {
  private readonly file: string;
  private writes: Promise<void> = Promise.resolve();
  constructor(root: string) {
    this.file = path.join(root, 'images.json');
  }

  async get(ref: string): Promise<Descriptor | undefined> {
    return (await this.load())[ref];
  }

  /**
   * Point `refs` at `desc`. Read-modify-write of one file: the writes of this
   * process are queued so two builds finishing at once both keep their tags,
   * and each lands atomically under a temp name of its own.
   */
  set(refs: readonly string[], desc: Descriptor): Promise<void> {
    const write = this.writes.then(async () => {
      const all = await this.load();
      for (const r of refs) all[r] = desc;
      await atomicWriteFile(this.file, JSON.stringify(all, null, 1));
    });
    this.writes = write.catch(() => undefined);
    return write;
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
