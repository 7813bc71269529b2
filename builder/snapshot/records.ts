import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, open, readdir, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Unsynced } from './durability.js';

/**
 * One snapshot's record. `name` is the key of an active snapshot or the name
 * of a committed one; `id` names its directory, short so that long parent
 * chains still fit into overlay's mount options (see overlay.ts).
 */
export interface SnapshotRecord {
  readonly name: string;
  readonly id: string;
  readonly parent: string | null;
  readonly kind: 'active' | 'committed';
  readonly createdAt: number;
  readonly unpackedBytes?: number;
  /** Set on commits whose files were not known to be on disk yet (durability.ts). */
  readonly unsynced?: Unsynced;
}

/** Where a record sits among the others: what removing its snapshot must check. */
export type RecordLinks = Pick<SnapshotRecord, 'name' | 'parent' | 'id'>;

/**
 * Records live one per file, so concurrent writers never rewrite a shared
 * database. A record is written to a temp file, fsynced, then hard-linked to
 * its final name: `link` fails when the name exists, which makes "create if
 * absent" atomic, and a crash leaves only a temp file that `sweepTemps` drops.
 */
export class RecordStore {
  /** By file name; see links(). */
  private readonly seen = new Map<string, RecordLinks>();

  constructor(private readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Creates the record; false when a record of that name already exists. */
  async create(rec: SnapshotRecord): Promise<boolean> {
    const tmp = path.join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(rec));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await link(tmp, this.fileOf(rec.name));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Read in place, like all(): a mount walks the whole parent chain, one small record per layer. */
  async get(name: string): Promise<SnapshotRecord | undefined> {
    try {
      return parseRecord(readFileSync(this.fileOf(name), 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(name: string): Promise<void> {
    const file = this.fileOf(name);
    this.seen.delete(path.basename(file));
    await rm(file, { force: true });
  }

  /**
   * Every record. Read synchronously: a root holds hundreds of small records
   * and the thread pool's four round trips per file made this O(n) in tens of
   * ms (160 ms at 360 records) at every start; read in place it is ~20 µs each.
   */
  async all(): Promise<SnapshotRecord[]> {
    const out: SnapshotRecord[] = [];
    for (const f of await readdir(this.dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        out.push(parseRecord(readFileSync(path.join(this.dir, f), 'utf8')));
      } catch (err) {
        // Deleted between readdir and read: a concurrent remove.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return out;
  }

  /**
   * Every record's name, parent and directory, reading only the files not seen
   * before: the GC removes snapshots one by one, each removal must know it
   * leaves no child behind, and reading every record for each one made a prune
   * of 2,000 snapshots take 23 s. What is kept cannot go stale under a file
   * name: a record is created once and deleted (this store forgets its own
   * deletions), a name is a random key or a chain id whose parent follows from
   * it, and a directory id is drawn fresh at every prepare.
   */
  async links(): Promise<RecordLinks[]> {
    const files = (await readdir(this.dir)).filter((f) => f.endsWith('.json'));
    const listed = new Set(files);
    for (const f of this.seen.keys()) if (!listed.has(f)) this.seen.delete(f);
    const out: RecordLinks[] = [];
    for (const f of files) {
      let l = this.seen.get(f);
      if (!l) {
        try {
          const r = parseRecord(readFileSync(path.join(this.dir, f), 'utf8'));
          l = { name: r.name, parent: r.parent, id: r.id };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        this.seen.set(f, l);
      }
      out.push(l);
    }
    return out;
  }

  /** Drops temp files left by a crash between write and link. */
  async sweepTemps(): Promise<void> {
    for (const f of await readdir(this.dir)) {
      if (f.startsWith('.tmp-')) await rm(path.join(this.dir, f), { force: true });
    }
  }

  /** Names are caller strings (chain ids, keys); the file name is their hash, so any name is safe. */
  private fileOf(name: string): string {
    return path.join(this.dir, `${createHash('sha256').update(name).digest('hex')}.json`);
  }
}

function parseRecord(text: string): SnapshotRecord {
  const r = JSON.parse(text) as SnapshotRecord;
  if (typeof r.name !== 'string' || typeof r.id !== 'string' || !/^[a-z0-9]+$/.test(r.id)) {
    throw new Error(`corrupt snapshot record for ${JSON.stringify(String(r.name).slice(0, 80))}`);
  }
  return r;
}
