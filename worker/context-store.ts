/**
 * The service's shared blob store: build contexts (the API writes them, the
 * workers read them) and full step logs (the workers write them, the API
 * serves them). Two backings behind one small interface:
 *
 * - a directory (`--contexts DIR`) when the API and the workers share a
 *   machine or a volume;
 * - an OCI registry repository (`--contexts registry://HOST/REPO`) when they
 *   do not: every blob is pushed as a one-layer artifact tagged
 *   `<kind>-<hex>`, so registry garbage collection keeps it and a manifest
 *   GET answers "is it stored, and how big" without fetching the blob.
 *
 * Vocabulary: a blob is named by the sha256 of its bytes; an upload is
 * hashed and counted while it is written to a private temp file and becomes
 * visible only at `commit()` (renamed into the directory, or pushed with HEAD
 * first so bytes already in the registry are not sent again). Readers always
 * get a stream that fails at its end unless the bytes match the digest.
 *
 *   const up = await store.ingest('context', maxBytes);
 *   for await (const c of chunks) await up.write(c);   // or up.abort()
 *   const { digest, size } = await up.commit();
 *   const verified = await store.open('context', digest, signal);
 *
 * Retention (worker/store-retention.ts) needs each blob's last use: `touch`
 * marks a re-use (a Submit naming a stored context), `unusedSince` lists
 * candidates, `removeIfUnused` deletes one only if it is still unused. A
 * directory keeps the last use as the file's mtime; a registry cannot list
 * or date its tags through our client, so its store keeps a use index in Redis.
 *
 * This file is re-exported by jobs.ts: it is part of the API ↔ worker contract.
 */
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import type { Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { verifyDigest } from '../core/streams.js';
import { SpooledUpload, sweepStaleUploads } from './store-upload.js';

/** What a blob is; each kind has its own name space (file suffix, registry tag prefix). */
export type StoredKind = 'context' | 'log';

export interface StoredBlob {
  readonly digest: Digest;
  readonly size: number;
}

export interface BlobUpload {
  write(chunk: Buffer): Promise<void>;
  readonly bytes: number;
  /** Stores the blob (idempotent: finding it stored already counts as success). */
  commit(): Promise<StoredBlob>;
  /** Drops the upload; safe after a failed commit. */
  abort(): Promise<void>;
}

export interface ServiceStore {
  /** For messages and logs: the directory or `registry://HOST/REPO`. */
  readonly location: string;
  init(): Promise<void>;
  /** Size of a stored blob, or undefined when it is not stored. */
  stat(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<number | undefined>;
  /** Starts an upload bounded by `maxBytes` (LIMIT_EXCEEDED past it). */
  ingest(kind: StoredKind, maxBytes: number): Promise<BlobUpload>;
  /** A digest-verified stream of a stored blob; NOT_FOUND when absent. */
  open(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<Readable>;
  /** Marks a re-use of a stored blob (its age starts again); its size, or undefined when it is not stored. */
  touch(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<number | undefined>;
  /** Blobs last used at or before `cutoffMs` (epoch ms): candidates, re-checked by `removeIfUnused`. */
  unusedSince(kind: StoredKind, cutoffMs: number, signal?: AbortSignal): AsyncIterable<Digest>;
  /** Deletes a blob unless it was used after `cutoffMs` (a touch racing the delete wins); true when deleted. */
  removeIfUnused(kind: StoredKind, digest: Digest, cutoffMs: number, signal?: AbortSignal): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * When each blob of a registry store was last used (stored or touched):
 * worker/store-index.ts keeps it in Redis. Without one a registry store
 * cannot age its blobs, and retention leaves them alone.
 */
export interface StoreUseIndex {
  mark(kind: StoredKind, digest: Digest, atMs: number): Promise<void>;
  lastUse(kind: StoredKind, digest: Digest): Promise<number | undefined>;
  usedAtOrBefore(kind: StoredKind, cutoffMs: number): AsyncIterable<Digest>;
  forget(kind: StoredKind, digest: Digest): Promise<void>;
}

export interface ServiceStoreOptions {
  /** Private scratch dir of this process: uploads bound for a registry are spooled here. */
  readonly tmpDir: string;
  /** Registries that may be spoken to over plain HTTP (loopback always may). */
  readonly insecureRegistries?: readonly string[];
  /** A registry store's use index (see StoreUseIndex); a directory store dates blobs by mtime. */
  readonly useIndex?: StoreUseIndex;
  /** Clock for last-use times (tests); default Date.now. */
  readonly now?: () => number;
}


const REGISTRY_SCHEME = 'registry://';

/** `registry://HOST/REPO` or a directory path → the store. */
export async function openServiceStore(spec: string, opts: ServiceStoreOptions): Promise<ServiceStore> {
  if (spec.startsWith(REGISTRY_SCHEME)) {
    const { RegistryStore } = await import('./registry-store.js');
    return RegistryStore.fromSpec(spec.slice(REGISTRY_SCHEME.length), opts);
  }
  return new DirStore(path.resolve(spec), opts.now);
}

export function isRegistryStoreSpec(spec: string): boolean {
  return spec.startsWith(REGISTRY_SCHEME);
}

/** Where a stored blob lives in a directory store (contexts keep the layout of the first version). */
export function storedFile(dir: string, kind: StoredKind, digest: Digest): string {
  const hex = digest.slice('sha256:'.length);
  return kind === 'context' ? path.join(dir, 'sha256', `${hex}.tar`) : path.join(dir, 'logs', 'sha256', `${hex}.log`);
}

/** A directory every process of the service mounts (DESIGN invariant 1: ingest, verify, rename). */
export class DirStore implements ServiceStore {
  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  get location(): string {
    return this.dir;
  }

  async init(): Promise<void> {
    for (const sub of ['sha256', 'ingest', 'logs/sha256']) await mkdir(path.join(this.dir, sub), { recursive: true, mode: 0o700 });
    await sweepStaleUploads(path.join(this.dir, 'ingest'));
  }

  async stat(kind: StoredKind, digest: Digest): Promise<number | undefined> {
    const st = await stat(storedFile(this.dir, kind, digest)).catch(() => undefined);
    return st?.isFile() ? st.size : undefined;
  }

  ingest(kind: StoredKind, maxBytes: number): Promise<BlobUpload> {
    // Same file system as the destination, so the final rename is atomic.
    return SpooledUpload.create(path.join(this.dir, 'ingest'), maxBytes, kind === 'context' ? 'build context' : 'step log', async (tmp, blob) => {
      await mkdir(path.dirname(storedFile(this.dir, kind, blob.digest)), { recursive: true, mode: 0o700 });
      await rename(tmp, storedFile(this.dir, kind, blob.digest));
    });
  }

  async open(kind: StoredKind, digest: Digest): Promise<Readable> {
    const src = createReadStream(storedFile(this.dir, kind, digest));
    await new Promise<void>((resolve, reject) => {
      src.once('open', () => resolve());
      src.once('error', reject);
    }).catch((err: NodeJS.ErrnoException) => {
      throw new CodedError('NOT_FOUND', `${kind} ${digest} is not in ${this.dir} (${err.code ?? err.message}): do the API and the workers share --contexts?`, { retryable: false });
    });
    // The shared dir is trusted to exist, not to be intact: verify while streaming.
    return pipeline(src, verifyDigest({ digest }, kind === 'context' ? 'build context' : 'step log'), () => undefined);
  }

  async touch(kind: StoredKind, digest: Digest): Promise<number | undefined> {
    const file = storedFile(this.dir, kind, digest);
    const t = new Date(this.now());
    // utimes on a missing file fails: absent means "upload it", never a stale yes.
    const ok = await utimes(file, t, t).then(() => true, () => false);
    return ok ? this.stat(kind, digest) : undefined;
  }

  async *unusedSince(kind: StoredKind, cutoffMs: number, signal?: AbortSignal): AsyncIterable<Digest> {
    const dir = path.dirname(storedFile(this.dir, kind, `sha256:${'0'.repeat(64)}` as Digest));
    const ext = kind === 'context' ? '.tar' : '.log';
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      signal?.throwIfAborted();
      const m = /^([a-f0-9]{64})(\.\w+)$/.exec(name);
      if (!m || m[2] !== ext) continue;
      const st = await stat(path.join(dir, name)).catch(() => undefined);
      if (st?.isFile() && st.mtimeMs <= cutoffMs) yield `sha256:${m[1]!}` as Digest;
    }
  }

  async removeIfUnused(kind: StoredKind, digest: Digest, cutoffMs: number): Promise<boolean> {
    const file = storedFile(this.dir, kind, digest);
    const st = await stat(file).catch(() => undefined);
    if (!st || st.mtimeMs > cutoffMs) return false;
    // Moved aside first, then dated again: a touch that hit the inode between the two stats shows here.
    const aside = path.join(this.dir, 'ingest', `expired-${randomBytes(8).toString('hex')}`);
    if (!(await rename(file, aside).then(() => true, () => false))) return false;
    try {
      const again = await stat(aside);
      if (again.mtimeMs > cutoffMs) {
        // Re-used meanwhile: put it back (unless an upload stored it again, which is as good).
        await link(aside, file).catch(() => undefined);
        return false;
      }
      return true;
    } finally {
      await rm(aside, { force: true });
    }
  }

  async close(): Promise<void> {}
}
