import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTar, LayerChangedError } from '../../builder/layers/index.js';

const MiB = 1024 * 1024;
const NO_XATTRS = { opaque: new Set<string>(), attrs: new Map<string, Map<string, Buffer>>() };

/** Open descriptors of this process on files under `dir`. */
function fdsUnder(dir: string): string[] {
  return readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    })
    .filter((t) => t.startsWith(dir));
}

/**
 * diffTar writes the tar in 1 MiB chunks (headers, file bytes and padding
 * packed together), which must change nothing but the chunking: the same
 * bytes, read by GNU tar as the same files, and every descriptor closed
 * however the reader stops.
 */
describe('diffTar in chunks', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-diff-chunks-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('gives full 1 MiB chunks of a tar GNU tar reads back file for file', async () => {
    const upper = path.join(tmp, 'upper');
    const sizes = [0, 1, 511, 512, 513, MiB - 100, 3 * MiB + 7];
    const want = new Map<string, string>();
    for (const [i, size] of sizes.entries()) {
      const bytes = randomBytes(size);
      await mkdir(path.join(upper, 'big'), { recursive: true });
      await writeFile(path.join(upper, 'big', `f${i}`), bytes);
      want.set(`big/f${i}`, createHash('sha256').update(bytes).digest('hex'));
    }
    for (let d = 0; d < 5; d++) {
      await mkdir(path.join(upper, 'small', `d${d}`), { recursive: true });
      for (let f = 0; f < 300; f++) {
        const bytes = randomBytes(64 + ((d * 300 + f) * 37) % 4000);
        await writeFile(path.join(upper, 'small', `d${d}`, `f${f}`), bytes);
        want.set(`small/d${d}/f${f}`, createHash('sha256').update(bytes).digest('hex'));
      }
    }

    const chunks: Buffer[] = [];
    for await (const c of diffTar(upper, { xattrs: NO_XATTRS })) chunks.push(c);
    expect(chunks.length).toBeGreaterThan(5);
    for (const c of chunks.slice(0, -1)) expect(c.length).toBe(MiB);
    const tar = Buffer.concat(chunks);
    expect(tar.length % 512).toBe(0);

    const out = path.join(tmp, 'out');
    await mkdir(out);
    execFileSync('tar', ['-xf', '-', '-C', out], { input: tar });
    for (const [rel, sum] of want) expect(createHash('sha256').update(await readFile(path.join(out, rel))).digest('hex'), rel).toBe(sum);
    expect(fdsUnder(upper)).toEqual([]);
  });

  it('closes the file it was reading when the reader stops, and fails on a file that shrank', async () => {
    const upper = path.join(tmp, 'one');
    await mkdir(upper);
    const file = path.join(upper, 'big');
    await writeFile(file, randomBytes(3 * MiB));

    // Stopped after the first chunk, in the middle of the file.
    for await (const _ of diffTar(upper, { xattrs: NO_XATTRS })) {
      expect(fdsUnder(upper)).toHaveLength(1);
      break;
    }
    expect(fdsUnder(upper)).toEqual([]);

    // Cut short while it is being read: the tar would lie about its size.
    const reading = diffTar(upper, { xattrs: NO_XATTRS });
    expect((await reading.next()).done).toBe(false);
    await truncate(file, MiB);
    await expect((async () => {
      for (;;) if ((await reading.next()).done) return;
    })()).rejects.toBeInstanceOf(LayerChangedError);
    expect(fdsUnder(upper)).toEqual([]);
  });
});
