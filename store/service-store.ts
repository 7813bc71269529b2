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
 * Retention (retention.ts) needs each blob's last use: `touch`
 * marks a re-use (a Submit naming a stored context), `unusedSince` lists
 * candidates, `removeIfUnused` deletes one only if it is still unused. A
 * directory keeps the last use as the file's mtime; a registry cannot list
 * or date its tags through our client, so its store keeps a use index in Redis.
 *
 * The interfaces live here, apart from both backings (dir-store.ts,
 * registry-store.ts) and the upload they share (upload.ts), so that each
 * depends on the vocabulary and none on another. The API and the workers
 * reach all of it through store/index.ts.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../core/digest.js';

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
 * use-index.ts keeps it in Redis. Without one a registry store
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
