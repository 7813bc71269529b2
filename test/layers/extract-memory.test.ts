/**
 * Applying a layer costs memory independent of its number of entries: a
 * generated layer of 1,000,000 entries is applied (in a child process, on a
 * tmpfs so the disk is not what is measured) with a peak RSS at most ~64 MiB
 * above applying a Debian-sized layer of 5,000 entries. Before the extractor
 * kept paths as 64-bit hashes, the same layer cost 170-350 MiB more.
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHeader, END_OF_ARCHIVE } from '../../builder/layers/tar-format.js';

const sh = promisify(execFile);
const CHILD = fileURLToPath(new URL('./extract-memory.child.mjs', import.meta.url));
/** The bound (measured here: +56 MiB, most of it the collector's young generation, not kept data). */
const BOUND = 64 << 20;

/** A gzip layer of n entries: a directory, then 999 empty files in it, and again; generated as it is written. */
async function writeLayerFile(file: string, n: number): Promise<void> {
  function* blocks(): Generator<Buffer> {
    const h = { uid: 0, gid: 0, size: 0, mtime: 1704067200 };
    let batch: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const dir = `d${Math.floor(i / 1000)}`;
      batch.push(encodeHeader(i % 1000 === 0 ? { ...h, name: `${dir}/`, type: 'dir', mode: 0o755 } : { ...h, name: `${dir}/f${i}`, type: 'file', mode: 0o644 }));
      if (batch.length === 512) {
        yield Buffer.concat(batch);
        batch = [];
      }
    }
    yield Buffer.concat([...batch, END_OF_ARCHIVE]);
  }
  await pipeline(Readable.from(blocks()), createGzip({ level: 1 }), createWriteStream(file));
}

describe('layer extraction memory', () => {
  let tmp: string;
  let target: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-extract-mem-'));
    target = path.join(tmp, 'target');
    await mkdir(target);
    await sh('mount', ['-t', 'tmpfs', '-o', 'size=3g', 'tmpfs', target]);
  });
  afterAll(async () => {
    if (target) await sh('umount', ['-l', target]).catch(() => undefined);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function apply(n: number): Promise<{ entries: number; peakRss: number }> {
    const layer = path.join(tmp, `layer-${n}.tar.gz`);
    await writeLayerFile(layer, n);
    const dest = path.join(target, String(n));
    await mkdir(dest);
    try {
      const { stdout } = await sh(process.execPath, [CHILD, layer, dest], { maxBuffer: 1 << 20 });
      return JSON.parse(stdout) as { entries: number; peakRss: number };
    } finally {
      await rm(dest, { recursive: true, force: true });
      await rm(layer, { force: true });
    }
  }

  it('a 1,000,000-entry layer is applied within ~64 MiB of a 5,000-entry one', async () => {
    const small = await apply(5000);
    const big = await apply(1_000_000);
    expect(small.entries).toBe(5000);
    expect(big.entries).toBe(1_000_000);
    const grew = big.peakRss - small.peakRss;
    process.stdout.write(`peak RSS: 5,000 entries ${(small.peakRss / 2 ** 20).toFixed(0)} MiB, 1,000,000 entries ${(big.peakRss / 2 ** 20).toFixed(0)} MiB (+${(grew / 2 ** 20).toFixed(0)} MiB)\n`);
    expect(grew).toBeLessThan(BOUND);
  }, 600_000);
});
