import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobInfo, IngestWriter, Ingester } from '../../core/content.js';
import type { Mount } from '../../core/mount.js';
import { ChunkLoans, ChunkPool } from '../../builder/layers/chunk-pool.js';
import { layerChunksReused, writeLayer, type LayerDescriptor } from '../../builder/layers/compress.js';
import { diffTar } from '../../builder/layers/diff.js';
import { DirIngester } from './dir-ingester.js';

describe('ChunkLoans', () => {
  it('gives a tar chunk back only once the blob bytes that hold it are written (gzip)', () => {
    const pool = new ChunkPool(4, 8);
    const loans = new ChunkLoans(pool, true);
    const a = loans.take();
    const b = loans.take();
    loans.lend(a, 4);
    loans.lend(b, 4);
    // The gzip's output for the first chunk ends at blob byte 10 (its header included).
    loans.covered(4, 10);
    loans.written(9);
    expect(pool.take()).not.toBe(a);
    loans.written(1);
    expect(pool.take()).toBe(a);
    // Blob bytes past every mark free nothing: the second chunk's output is not out yet.
    loans.written(100);
    expect(pool.take()).not.toBe(b);
    loans.covered(8, 14);
    loans.written(0);
    expect(pool.take()).toBe(b);
  });

  it('without gzip, a written byte of blob is a byte of tar', () => {
    const pool = new ChunkPool(4, 8);
    const loans = new ChunkLoans(pool, false);
    const a = loans.take();
    const last = loans.take();
    loans.lend(a, 4);
    loans.lend(last, 2);
    loans.written(3);
    expect(pool.take()).not.toBe(a);
    loans.written(1);
    expect(pool.take()).toBe(a);
    loans.written(2);
    expect(pool.take()).toBe(last);
  });

  it('keeps no more idle buffers than asked, and none of another size', () => {
    const pool = new ChunkPool(4, 1);
    pool.give(Buffer.alloc(4));
    pool.give(Buffer.alloc(4));
    pool.give(Buffer.alloc(3));
    const first = pool.take();
    expect(pool.reused).toBe(1);
    expect(first.length).toBe(4);
    pool.take();
    expect(pool.reused).toBe(1);
  });
});

/**
 * A store whose writes land a little later than they are asked for, as on a
 * busy disk: a tar chunk reused while a view of it still waits here would
 * show as a blob that does not hold the tar.
 */
class SlowIngester implements Ingester {
  constructor(private readonly inner: DirIngester) {}

  async ingest(ref: string, expected?: Partial<BlobInfo>): Promise<IngestWriter> {
    const w = await this.inner.ingest(ref, expected);
    const slow = new Writable({
      write(chunk: Buffer, _enc, cb) {
        setTimeout(() => w.write(chunk, cb), 2);
      },
      final(cb) {
        w.end(cb);
      },
    }) as IngestWriter;
    slow.commit = () => w.commit();
    slow.abort = () => w.abort();
    return slow;
  }
}

/** Bytes that differ in every 64 KiB, so a chunk read into the wrong buffer cannot pass for another. */
function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(Math.ceil(size / 4) * 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < b.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b.subarray(0, size);
}

describe('writeLayer with reused tar chunks', () => {
  let tmp: string;
  let upper: string;
  let ingester: DirIngester;
  let mounts: Mount[];
  let tar: Buffer;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-chunks-'));
    upper = path.join(tmp, 'upper');
    await mkdir(path.join(upper, 'small'), { recursive: true });
    // Stored chunks (random), deflated ones (text), and many small files between them.
    await writeFile(path.join(upper, 'a.bin'), patterned(5 * 1024 * 1024 + 123, 7));
    await writeFile(path.join(upper, 'b.txt'), 'the layer tar, in chunks that come back\n'.repeat(80_000));
    for (let i = 0; i < 300; i++) await writeFile(path.join(upper, 'small', `f${i}`), patterned(1000 + i * 7, i + 1));
    await writeFile(path.join(upper, 'c.bin'), patterned(4 * 1024 * 1024, 99));
    ingester = new DirIngester(path.join(tmp, 'store'));
    mounts = [{ type: 'bind', source: upper, target: '/', options: [] }];
    // The tar as written without the pool, to compare every blob with.
    const pieces: Buffer[] = [];
    for await (const p of diffTar(upper)) pieces.push(Buffer.from(p));
    tar = Buffer.concat(pieces);
  });

  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  async function check(layer: LayerDescriptor | null, gzip: boolean): Promise<void> {
    expect(layer).not.toBeNull();
    const blob = await readFile(ingester.path(layer!.digest));
    expect(gzip ? gunzipSync(blob).equals(tar) : blob.equals(tar)).toBe(true);
    expect(layer!.diffId).toBe(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
    expect(layer!.unpackedSize).toBe(tar.length);
  }

  it('writes the same tar layer after layer, one at a time and two at once, and reuses its buffers', async () => {
    const slow = new SlowIngester(ingester);
    const before = layerChunksReused();
    const first = await writeLayer(mounts, slow);
    await check(first, true);
    await check(await writeLayer(mounts, slow), true);
    const [x, y] = await Promise.all([writeLayer(mounts, slow), writeLayer(mounts, ingester, { compression: 'none' })]);
    await check(x, true);
    await check(y, false);
    expect(x!.digest).toBe(first!.digest);
    // ~13 MiB a layer against 8 kept: chunks came back within a write and across writes.
    expect(layerChunksReused() - before).toBeGreaterThan(8);
  });
});
