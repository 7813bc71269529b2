import type { Readable, Writable } from 'node:stream';
import type { Digest } from './digest.js';

/**
 * Content store vocabulary (containerd's content.Store, split small):
 * - a *blob* is immutable bytes named by the sha256 of those bytes;
 * - an *ingest* is an in-progress write under a caller-chosen `ref`, invisible to readers;
 * - `commit()` verifies size and digest, syncs, and renames the ingest into place;
 *   finding the blob already there counts as success (puts are idempotent);
 * - `abort()` deletes the ingest; a crash leaves only ingests, never a wrong blob.
 *
 *   const w = await store.ingest('layer-1', { digest, size });
 *   await pipeline(source, w);          // hashes while writing
 *   const { digest } = await w.commit(); // or w.abort() on failure
 */
export interface BlobInfo {
  readonly digest: Digest;
  readonly size: number;
}

export interface BlobProvider {
  /** A stream of the blob's bytes; rejects with NOT_FOUND when absent. */
  open(digest: Digest, signal?: AbortSignal): Promise<Readable>;
  /** Size of a present blob, or undefined. */
  stat(digest: Digest): Promise<BlobInfo | undefined>;
}

export interface IngestWriter extends Writable {
  /** Verifies (against `expected` when given), syncs and renames into place. Call after the stream finished. */
  commit(): Promise<BlobInfo>;
  /** Drops the partial write; safe to call more than once and after a failed commit. */
  abort(): Promise<void>;
}

export interface Ingester {
  ingest(ref: string, expected?: Partial<BlobInfo>): Promise<IngestWriter>;
}

export interface ContentStore extends BlobProvider, Ingester {
  delete(digest: Digest): Promise<void>;
  list(): AsyncIterable<BlobInfo>;
}
