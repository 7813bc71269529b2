import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobInfo, ContentStore, IngestWriter } from '../core/content.js';
import type { Digest } from '../core/digest.js';
import { isErrno } from '../core/fs-util.js';

/** Where a blob can be fetched from when the local store lacks it (a registry cache, a cache dir). */
export interface RemoteBlob {
  readonly size: number;
  /** The blob's bytes; the store verifies digest and size as it writes them. */
  fetch(signal?: AbortSignal): Promise<Readable>;
}

/**
 * A content store that also knows blobs it does not hold yet: an imported
 * cache registers its layers here, a cache hit on them counts as present
 * (`stat`), and the bytes are fetched into the local store only when someone
 * opens them (a step that must run on top, or a push to a registry that lacks
 * them). Fetches go through the local store's ingest, so they are verified
 * and atomic like any write; one fetch per blob however many readers wait.
 */
export class LazyBlobStore implements ContentStore {
  private readonly remote = new Map<Digest, RemoteBlob[]>();
  private readonly fetching = new Map<Digest, Promise<void>>();

  constructor(readonly local: ContentStore) {}

  /** Registers remote blobs; the returned function unregisters exactly these. */
  register(blobs: ReadonlyMap<Digest, RemoteBlob>): () => void {
    for (const [d, b] of blobs) {
      const list = this.remote.get(d) ?? [];
      list.push(b);
      this.remote.set(d, list);
    }
    return () => {
      for (const [d, b] of blobs) {
        const list = (this.remote.get(d) ?? []).filter((x) => x !== b);
        if (list.length) this.remote.set(d, list);
        else this.remote.delete(d);
      }
    };
  }

  /** True when the blob is in the local store (not merely fetchable). */
  async isLocal(digest: Digest): Promise<boolean> {
    return (await this.local.stat(digest)) !== undefined;
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    const here = await this.local.stat(digest);
    if (here) return here;
    const r = this.remote.get(digest)?.[0];
    return r ? { digest, size: r.size } : undefined;
  }

  async open(digest: Digest, signal?: AbortSignal): Promise<Readable> {
    try {
      return await this.local.open(digest, signal);
    } catch (err) {
      if (!this.remote.has(digest) || !isNotFound(err)) throw err;
    }
    await this.fetch(digest, signal);
    return this.local.open(digest, signal);
  }

  /** Fetches a remote-only blob into the local store (a no-op when it is there). */
  fetch(digest: Digest, signal?: AbortSignal): Promise<void> {
    let p = this.fetching.get(digest);
    if (!p) {
      p = this.fetchNow(digest, signal).finally(() => this.fetching.delete(digest));
      this.fetching.set(digest, p);
    }
    return p;
  }

  private async fetchNow(digest: Digest, signal?: AbortSignal): Promise<void> {
    if (await this.local.stat(digest)) return;
    let last: unknown;
    // Try each source in turn: one cache going away must not fail a build another can serve.
    for (const r of this.remote.get(digest) ?? []) {
      const writer = await this.local.ingest(`lazy-${digest}`, { digest, size: r.size });
      try {
        await pipeline(await r.fetch(signal), writer, ...(signal ? [{ signal }] : []));
        await writer.commit();
        return;
      } catch (err) {
        await writer.abort();
        if (signal?.aborted) throw err;
        last = err;
      }
    }
    throw last ?? new Error(`blob ${digest} is neither local nor in any imported cache`);
  }

  ingest(ref: string, expected?: Partial<BlobInfo>): Promise<IngestWriter> {
    return this.local.ingest(ref, expected);
  }

  delete(digest: Digest): Promise<void> {
    return this.local.delete(digest);
  }

  list(): AsyncIterable<BlobInfo> {
    return this.local.list();
  }
}

function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown }).code === 'NOT_FOUND' || isErrno(err, 'ENOENT');
}
