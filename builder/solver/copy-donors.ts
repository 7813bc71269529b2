import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FileAction } from '../graph/index.js';
import type { LayerDescriptor } from '../layers/index.js';

/** What a COPY last produced. */
export interface CopyDonor {
  /** The committed snapshot: its own dir is where unchanged files are linked from (file-ops/reuse.ts). */
  readonly snapshot: string;
  /** Its layer, and what the layer's bytes depended on besides the tree: reused when the tree is the same. */
  readonly layer?: LayerDescriptor;
  readonly sourceDateEpoch?: number | null;
  /** The tree had no xattrs we keep and no opaque dirs (which the tree walk does not compare). */
  readonly plain?: boolean;
}

/**
 * The last result of each COPY, by what the COPY is (its actions: sources,
 * destination, flags; not the content it copied, nor its parent): when the
 * content or the parent changes, the next run links its unchanged files from
 * that result and, when its tree comes out the same, takes its layer as is.
 * Nothing here is trusted for content: files are compared in full and trees
 * entry by entry; a record whose snapshot or blob is gone is simply unused.
 * One file per COPY, replaced atomically.
 */
export class CopyDonors {
  constructor(private readonly dir: string) {}

  keyOf(actions: readonly FileAction[]): string {
    return createHash('sha256').update(JSON.stringify(actions)).digest('hex');
  }

  async get(key: string): Promise<CopyDonor | undefined> {
    try {
      const rec = JSON.parse(await readFile(path.join(this.dir, key), 'utf8')) as CopyDonor;
      return typeof rec.snapshot === 'string' ? rec : undefined;
    } catch {
      return undefined;
    }
  }

  async set(key: string, donor: CopyDonor): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(this.dir, `.${key}.${randomUUID()}`);
    await writeFile(tmp, JSON.stringify(donor), { mode: 0o600 });
    await rename(tmp, path.join(this.dir, key));
  }
}
