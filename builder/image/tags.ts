import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDigest, type Digest } from '../../core/digest.js';
import type { Descriptor } from '../../core/oci.js';
import { formatReference, parseReference, type Reference } from '../../core/reference.js';
import { atomicWriteFile } from '../../core/fs-util.js';

/**
 * Local image names (`-t` without `--push`): ref → manifest descriptor, in one
 * JSON file replaced atomically. `buildlite push REF` reads it. Keys are the
 * fully qualified form of the parsed reference, so `app` and
 * `docker.io/library/app:latest` name one image.
 */
export class TagStore {
  private readonly file: string;
  private writes: Promise<void> = Promise.resolve();
  constructor(root: string) {
    this.file = path.join(root, 'images.json');
  }

  async get(ref: Reference): Promise<Descriptor | undefined> {
    return (await this.load())[formatReference(ref)];
  }

  /**
   * Point `refs` at `desc`. Read-modify-write of one file: the writes of this
   * process are queued so two builds finishing at once both keep their tags,
   * and each lands atomically under a temp name of its own.
   */
  set(refs: readonly Reference[], desc: Descriptor): Promise<void> {
    const write = this.writes.then(async () => {
      const all = await this.load();
      // A rebuild that changed nothing names the same manifest: nothing to write (nor fsync).
      if (refs.every((r) => sameDescriptor(all[formatReference(r)], desc))) return;
      for (const r of refs) all[formatReference(r)] = desc;
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
    let stored: Record<string, Descriptor>;
    try {
      stored = JSON.parse(await readFile(this.file, 'utf8')) as Record<string, Descriptor>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    // Files written before keys were qualified hold names as typed (`app`): read them qualified.
    // A later entry for the same image wins, as a later write would have.
    const all: Record<string, Descriptor> = {};
    for (const [name, desc] of Object.entries(stored)) {
      let key: string;
      try {
        key = formatReference(parseReference(name));
      } catch {
        continue;
      }
      all[key] = desc;
    }
    return all;
  }
}

function sameDescriptor(a: Descriptor | undefined, b: Descriptor): boolean {
  return a !== undefined && a.digest === b.digest && a.size === b.size && a.mediaType === b.mediaType;
}
