import { readFileSync, statSync, utimesSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, isDigest, type Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { atomicWriteFile, isErrno, unlinkQuiet } from '../core/fs-util.js';
import { onceUntilDone } from '../core/retry-once.js';

/** One layer of a cached filesystem: the compressed blob and the digest of its uncompressed tar. */
export interface LayerRef {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly diffId: Digest;
}

/**
 * What a cache key resolved to: the FULL chain of layers of the vertex's
 * filesystem, base first (not just the layer the vertex added), so a hit needs
 * nothing but this record and the blobs it names.
 */
export interface CacheRecord {
  readonly layers: LayerRef[];
  readonly createdAt: number;
  readonly lastUsedAt: number;
  /** The key's pre-image, kept in debug mode. */
  readonly debug?: unknown;
}

export interface CacheRecordEntry {
  readonly key: Digest;
  readonly record: CacheRecord;
  /** Bytes on disk of the record and its pre-image file (metadata counts against the budget). */
  readonly diskSize: number;
}

const LAST_BUILD = 'last-build.json';

/** Records larger than this are corrupt or hostile; a real chain of 128 layers is ~40 KiB. */
const MAX_RECORD_BYTES = 4 << 20;

/**
 * The cache index: cache key → CacheRecord, one small JSON file per key,
 *
 *   <dir>/records/<hex>.json     the record, written atomically (temp + rename)
 *   <dir>/preimages/<hex>.json   the key's pre-image, for `why-miss` (optional)
 *
 * `touch()` only bumps the file's mtime: a fully cached build touches every
 * record it uses, and an fsync'ed rewrite per hit would cost more than the hit.
 * `lastUsedAt` read back is the later of the stored value and the mtime.
 */
export class CacheKeyIndex {
  readonly recordsDir: string;
  readonly preimagesDir: string;

  constructor(readonly dir: string) {
    this.recordsDir = join(dir, 'records');
    this.preimagesDir = join(dir, 'preimages');
  }

  /**
   * The record of `key`. Read in place: a build looks up every step before
   * running any, and a few hundred bytes per record cost less than the thread
   * pool's round trips (a fully cached build is mostly these lookups).
   */
  async get(key: Digest): Promise<CacheRecord | undefined> {
    const path = this.recordPath(key);
    try {
      const text = readFileSync(path, 'utf8');
      const st = statSync(path);
      const record = parseRecord(text);
      // A corrupt record is a miss, not a failed build; it is rewritten on the next put.
      if (!record) return undefined;
      return { ...record, lastUsedAt: Math.max(record.lastUsedAt, Math.round(st.mtimeMs)) };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw indexError(`read cache record ${key}`, err);
    }
  }

  async put(key: Digest, record: CacheRecord): Promise<void> {
    const path = this.recordPath(key);
    await this.init();
    const stored: CacheRecord = {
      layers: record.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, diffId: l.diffId })),
      createdAt: record.createdAt,
      lastUsedAt: record.lastUsedAt,
      ...(record.debug !== undefined ? { debug: record.debug } : {}),
    };
    for (const l of stored.layers) {
      if (!isDigest(l.digest) || !isDigest(l.diffId)) throw new CodedError('INVALID_ARGUMENT', `cache record ${key} names a malformed layer digest`);
    }
    try {
      await atomicWriteFile(path, JSON.stringify(stored));
    } catch (err) {
      throw indexError(`write cache record ${key}`, err);
    }
  }

  /** Marks a record as used now (in place, as get reads it); a missing record is ignored. */
  async touch(key: Digest, now = Date.now()): Promise<void> {
    const path = this.recordPath(key);
    const t = new Date(now);
    try {
      utimesSync(path, t, t);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw indexError(`touch cache record ${key}`, err);
    }
  }

  async delete(key: Digest): Promise<void> {
    const path = this.recordPath(key);
    try {
      await unlinkQuiet(path);
      await unlinkQuiet(this.preimagePath(key));
    } catch (err) {
      throw indexError(`delete cache record ${key}`, err);
    }
  }

  /** Every readable record with its disk size; unreadable files are skipped. */
  async *list(): AsyncIterable<CacheRecordEntry> {
    let names: string[];
    try {
      names = await readdir(this.recordsDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw indexError('list cache records', err);
    }
    for (const name of names.sort()) {
      if (!name.endsWith('.json')) continue;
      const key = `sha256:${name.slice(0, -'.json'.length)}`;
      if (!isDigest(key)) continue;
      const record = await this.get(key);
      if (!record) continue;
      const diskSize = (await diskBytes(this.recordPath(key))) + (await diskBytes(this.preimagePath(key)));
      yield { key, record, diskSize };
    }
  }

  /** Keeps the key's pre-image beside it, for explaining misses (`why-miss`). */
  async putPreimage(key: Digest, preimage: unknown): Promise<void> {
    const path = this.preimagePath(key);
    await this.init();
    try {
      await atomicWriteFile(path, JSON.stringify(preimage));
    } catch (err) {
      throw indexError(`write pre-image of ${key}`, err);
    }
  }

  async getPreimage(key: Digest): Promise<unknown> {
    const path = this.preimagePath(key);
    try {
      const text = await readFile(path, 'utf8');
      return JSON.parse(text) as unknown;
    } catch (err) {
      if (isErrno(err, 'ENOENT') || err instanceof SyntaxError) return undefined;
      throw indexError(`read pre-image of ${key}`, err);
    }
  }

  /** Every key that has a pre-image (for `why-miss` to find the nearest one). */
  async *listPreimages(): AsyncIterable<Digest> {
    let names: string[];
    try {
      names = await readdir(this.preimagesDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw indexError('list pre-images', err);
    }
    for (const name of names.sort()) {
      const key = `sha256:${name.replace(/\.json$/, '')}`;
      if (name.endsWith('.json') && isDigest(key)) yield key;
    }
  }

  /** Remembers which steps the last debug-mode build ran, for `debug why-miss --last`. */
  async putLastBuild(steps: ReadonlyArray<{ key: Digest; name: string }>): Promise<void> {
    await this.init();
    await atomicWriteFile(join(this.dir, LAST_BUILD), JSON.stringify({ steps, at: Date.now() }));
  }

  async getLastBuild(): Promise<Array<{ key: Digest; name: string }>> {
    try {
      const doc = JSON.parse(await readFile(join(this.dir, LAST_BUILD), 'utf8')) as { steps?: unknown };
      if (!Array.isArray(doc.steps)) return [];
      return doc.steps.filter((s): s is { key: Digest; name: string } => isDigest((s as { key?: unknown }).key) && typeof (s as { name?: unknown }).name === 'string');
    } catch (err) {
      if (isErrno(err, 'ENOENT') || err instanceof SyntaxError) return [];
      throw indexError('read the last build record', err);
    }
  }

  /** Removes pre-images whose record is gone (GC removes records; pre-images follow). */
  async sweepOrphanPreimages(): Promise<number> {
    let removed = 0;
    for await (const key of this.listPreimages()) {
      if (!(await exists(this.recordPath(key)))) {
        await unlinkQuiet(this.preimagePath(key));
        removed++;
      }
    }
    return removed;
  }

  private recordPath(key: Digest): string {
    return join(this.recordsDir, `${checkKey(key)}.json`);
  }

  private preimagePath(key: Digest): string {
    return join(this.preimagesDir, `${checkKey(key)}.json`);
  }

  private readonly init = onceUntilDone(async () => {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await mkdir(this.recordsDir, { recursive: true, mode: 0o700 });
      await mkdir(this.preimagesDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw indexError(`create cache index at ${this.dir}`, err);
    }
  });
}

function checkKey(key: Digest): string {
  if (!isDigest(key)) throw new CodedError('INVALID_ARGUMENT', `not a cache key digest: ${String(key).slice(0, 80)}`);
  return digestHex(key);
}

function parseRecord(text: string): CacheRecord | undefined {
  if (text.length > MAX_RECORD_BYTES) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<Record<keyof CacheRecord, unknown>>;
  if (!Array.isArray(v.layers) || typeof v.createdAt !== 'number' || typeof v.lastUsedAt !== 'number') return undefined;
  const layers: LayerRef[] = [];
  for (const l of v.layers as unknown[]) {
    if (typeof l !== 'object' || l === null) return undefined;
    const { mediaType, digest, size, diffId } = l as Record<string, unknown>;
    if (typeof mediaType !== 'string' || !isDigest(digest) || !isDigest(diffId) || typeof size !== 'number') return undefined;
    layers.push({ mediaType, digest, size, diffId });
  }
  return { layers, createdAt: v.createdAt, lastUsedAt: v.lastUsedAt, ...(v.debug !== undefined ? { debug: v.debug } : {}) };
}

/** Bytes a file takes on disk (blocks, not length): a 100-byte record still costs a block. */
export async function diskBytes(path: string): Promise<number> {
  try {
    const st = await stat(path);
    return Math.max(st.size, st.blocks * 512);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (err: unknown) => {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    },
  );
}

function indexError(what: string, cause: unknown): CodedError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new CodedError('STORE', `${what}: ${reason}`, { cause });
}
