import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobInfo, ContentStore } from '../../core/content.js';
import { digestFromHash, sha256, type Digest } from '../../core/digest.js';
import { BuildliteError } from '../../core/errors.js';
import { DigestMismatchError, readAllBounded } from '../../core/streams.js';
import { copyBlob, putJson, readJson, writeBlob } from '../../cache/index.js';

/** A store under test and how to get rid of it (temp dirs, servers). */
export interface ContentStoreFixture {
  readonly store: ContentStore;
  dispose(): Promise<void>;
}

async function readBlob(store: ContentStore, digest: Digest): Promise<Buffer> {
  return readAllBounded(await store.open(digest), 64 << 20, 'test blob');
}

async function listAll(store: ContentStore): Promise<BlobInfo[]> {
  const out: BlobInfo[] = [];
  for await (const b of store.list()) out.push(b);
  return out;
}

/** Chunks of `total` bytes, produced lazily, so large blobs never sit in memory at once. */
function chunked(seed: Buffer, total: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(seed.length, total - sent);
      sent += n;
      this.push(seed.subarray(0, n));
    },
  });
}

/** Behaviour every ContentStore must show (containerd's content testsuite, small). */
export function describeContentStore(name: string, factory: () => Promise<ContentStoreFixture>): void {
  describe(`ContentStore: ${name}`, () => {
    let fx: ContentStoreFixture;
    let store: ContentStore;
    beforeEach(async () => {
      fx = await factory();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.dispose();
    });

    it('ingests, commits and reads back a blob by its digest', async () => {
      const bytes = Buffer.from('hello, content store\n');
      const w = await store.ingest('ref-1');
      await pipeline(Readable.from([bytes]), w);
      const info = await w.commit();
      expect(info).toEqual({ digest: sha256(bytes), size: bytes.length });
      expect(await store.stat(info.digest)).toEqual(info);
      expect((await readBlob(store, info.digest)).equals(bytes)).toBe(true);
      expect(await listAll(store)).toEqual([info]);
    });

    it('commits a blob that matches what was expected, streamed in many chunks', async () => {
      const seed = randomBytes(256 * 1024);
      const total = 5 * 1024 * 1024 + 123;
      const { createHash } = await import('node:crypto');
      const h = createHash('sha256');
      for await (const c of chunked(seed, total)) h.update(c as Buffer);
      const digest = digestFromHash(h);
      const info = await writeBlob(store, chunked(seed, total), { digest, size: total });
      expect(info).toEqual({ digest, size: total });
      expect(await store.stat(digest)).toEqual({ digest, size: total });
    });

    it('treats a put of a blob already present as success (idempotent)', async () => {
      const bytes = Buffer.from('twice');
      const a = await writeBlob(store, bytes);
      // Force a second real ingest (writeBlob would skip it) to exercise commit's "already there" path.
      const w = await store.ingest('another-ref', { digest: a.digest, size: a.size });
      await pipeline(Readable.from([bytes]), w);
      expect(await w.commit()).toEqual(a);
      expect(await listAll(store)).toEqual([a]);
    });

    it('rejects a size mismatch with DigestMismatchError and keeps nothing', async () => {
      const bytes = Buffer.from('twelve bytes');
      const w = await store.ingest('short', { digest: sha256(bytes), size: bytes.length - 1 });
      const err = await pipeline(Readable.from([bytes]), w).then(
        () => w.commit(),
        (e: unknown) => e,
      );
      await w.abort();
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect(await store.stat(sha256(bytes))).toBeUndefined();
      expect(await listAll(store)).toEqual([]);

      const w2 = await store.ingest('long', { size: bytes.length + 1 });
      await pipeline(Readable.from([bytes]), w2);
      await expect(w2.commit()).rejects.toBeInstanceOf(DigestMismatchError);
      await w2.abort();
      expect(await listAll(store)).toEqual([]);
    });

    it('rejects a digest mismatch with DigestMismatchError and nothing appears under either name', async () => {
      const bytes = Buffer.from('the real bytes');
      const claimed = sha256('other bytes');
      const w = await store.ingest('liar', { digest: claimed, size: bytes.length });
      await pipeline(Readable.from([bytes]), w);
      const err = await w.commit().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect((err as DigestMismatchError).code).toBe('DIGEST_MISMATCH');
      expect(await store.stat(claimed)).toBeUndefined();
      expect(await store.stat(sha256(bytes))).toBeUndefined();
      await w.abort(); // safe after a failed commit
      expect(await listAll(store)).toEqual([]);
    });

    it('abort drops the write, may be called twice, and a later ingest of the same ref works', async () => {
      const w = await store.ingest('dropped');
      w.write(Buffer.from('partial'));
      await w.abort();
      await w.abort();
      expect(await listAll(store)).toEqual([]);
      const info = await writeBlob(store, Readable.from([Buffer.from('complete')]));
      expect(await store.stat(info.digest)).toEqual(info);
    });

    it('open of an absent blob rejects with a NOT_FOUND BuildliteError', async () => {
      const err = await store.open(sha256('nope')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BuildliteError);
      expect((err as BuildliteError).code).toBe('NOT_FOUND');
      expect(await store.stat(sha256('nope'))).toBeUndefined();
    });

    it('lists and deletes blobs', async () => {
      const a = await writeBlob(store, 'a');
      const b = await writeBlob(store, 'b');
      const listed = (await listAll(store)).sort((x, y) => x.digest.localeCompare(y.digest));
      expect(listed).toEqual([a, b].sort((x, y) => x.digest.localeCompare(y.digest)));
      await store.delete(a.digest);
      expect(await store.stat(a.digest)).toBeUndefined();
      expect(await listAll(store)).toEqual([b]);
      await expect(store.open(a.digest)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('lets concurrent ingests of the same blob (same and different refs) all succeed with one blob', async () => {
      const seed = randomBytes(64 * 1024);
      const total = 2 * 1024 * 1024;
      const writes = Array.from({ length: 6 }, async (_, i) => {
        const w = await store.ingest(i % 2 === 0 ? 'same-ref' : `ref-${i}`, { size: total });
        await pipeline(chunked(seed, total), w);
        return w.commit();
      });
      const infos = await Promise.all(writes);
      const digests = new Set(infos.map((i) => i.digest));
      expect(digests.size).toBe(1);
      const all = await listAll(store);
      expect(all).toHaveLength(1);
      expect(all[0]!.size).toBe(total);
      const back = await readBlob(store, all[0]!.digest);
      expect(sha256(back)).toBe(all[0]!.digest);
    });

    it('stores JSON as exactly the bytes its digest names, and reads it back bounded', async () => {
      const value = { b: 2, a: [1, { d: 'x', c: null }] };
      const put = await putJson(store, value);
      expect(put.bytes.toString()).toBe('{"a":[1,{"c":null,"d":"x"}],"b":2}');
      expect(put.digest).toBe(sha256(put.bytes));
      expect(await readJson(store, put.digest, 1024)).toEqual(value);
      await expect(readJson(store, put.digest, 4)).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    });

    it('copies a blob into another store of the same kind', async () => {
      const other = await factory();
      try {
        const info = await writeBlob(store, randomBytes(100_000));
        expect(await copyBlob(store, other.store, info.digest)).toEqual(info);
        expect(await other.store.stat(info.digest)).toEqual(info);
        expect(await copyBlob(store, other.store, info.digest)).toEqual(info);
        await expect(copyBlob(store, other.store, sha256('missing'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
      } finally {
        await other.dispose();
      }
    });
  });
}
