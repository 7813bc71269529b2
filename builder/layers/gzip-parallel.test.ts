import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ParallelGzip } from './gzip-parallel.js';

async function gzipOf(parts: Buffer[], opts: ConstructorParameters<typeof ParallelGzip>[0] = {}): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of Readable.from(parts).pipe(new ParallelGzip(opts))) out.push(c as Buffer);
  return Buffer.concat(out);
}

function textLike(n: number): Buffer {
  const words = ['layer', 'blob', 'digest', 'manifest', 'runc', 'overlay', 'snapshot', '\n'];
  let s = '';
  let i = 7;
  while (s.length < n) s += `${words[(i = (i * 31 + 11) % 97) % words.length]} `;
  return Buffer.from(s.slice(0, n));
}

/** Bytes that do not compress, the same on every run: a hash chain, not randomBytes. */
function noiseLike(n: number, tag: number): Buffer {
  const out: Buffer[] = [];
  for (let i = 0, m = 0; m < n; i++, m += 32) out.push(createHash('sha256').update(`${tag}:${i}`).digest());
  return Buffer.concat(out).subarray(0, n);
}

describe('ParallelGzip', () => {
  const chunk = 64 * 1024;
  const mixed = Buffer.concat([textLike(3 * chunk + 123), randomBytes(2 * chunk + 7), textLike(chunk / 2)]);

  it('round-trips empty, small, chunk-sized and mixed inputs', async () => {
    for (const input of [Buffer.alloc(0), Buffer.from('hello'), textLike(chunk), mixed]) {
      const gz = await gzipOf([input], { chunkSize: chunk });
      expect(gunzipSync(gz).equals(input)).toBe(true);
    }
  });

  it('gives the same bytes however the input is split', async () => {
    const whole = await gzipOf([mixed], { chunkSize: chunk });
    const pieces: Buffer[] = [];
    for (let off = 0; off < mixed.length; off += 5000) pieces.push(mixed.subarray(off, off + 5000));
    expect((await gzipOf(pieces, { chunkSize: chunk })).equals(whole)).toBe(true);
  });

  it('compresses text and stores random data without growing it much', async () => {
    const text = textLike(8 * chunk);
    expect((await gzipOf([text], { chunkSize: chunk })).length).toBeLessThan(text.length / 3);
    const rnd = randomBytes(8 * chunk);
    const gz = await gzipOf([rnd], { chunkSize: chunk });
    expect(gz.length).toBeLessThan(rnd.length * 1.001 + 64);
    expect(gunzipSync(gz).equals(rnd)).toBe(true);
  });

  it('writes incompressible data as stored blocks of its own, the same however split, a random tail included', async () => {
    const rnd = randomBytes(3 * chunk + 70_001);
    const whole = await gzipOf([rnd], { chunkSize: chunk });
    const pieces: Buffer[] = [];
    for (let off = 0, n = 1; off < rnd.length; off += n, n = (n * 7 + 3) % 40_000) pieces.push(rnd.subarray(off, off + n));
    const split = await gzipOf(pieces, { chunkSize: chunk });
    expect(split.equals(whole)).toBe(true);
    expect(gunzipSync(split).equals(rnd)).toBe(true);
    // Header, then the first chunk: stored blocks of 65535 bytes (BTYPE 00, LEN, ~LEN) then the rest of the chunk.
    expect(whole.subarray(10, 15)).toEqual(Buffer.from([0x00, 0xff, 0xff, 0x00, 0x00]));
    expect(whole.subarray(15, 15 + 0xffff).equals(rnd.subarray(0, 0xffff))).toBe(true);
    expect(whole.subarray(15 + 0xffff, 20 + 0xffff)).toEqual(Buffer.from([0x00, 0x01, 0x00, 0xfe, 0xff]));
  });

  it('sees a text file between two compressed members that falls between samples spread 350 KB apart', async () => {
    // One 1 MiB chunk: noise, a 240 KB text file at 80-320 KB, noise. Four 8 KiB samples
    // (at 0, 1/3, 2/3 and the end, as the probe took them) all miss it; samples every ~65 KB do not.
    const input = Buffer.concat([noiseLike(80 * 1024, 1), textLike(240 * 1024), noiseLike(704 * 1024, 2)]);
    const gz = await gzipOf([input]);
    expect(gunzipSync(gz).equals(input)).toBe(true);
    // The text deflates to a fraction of its size: at least 10 % of the chunk saved.
    expect(gz.length).toBeLessThan(input.length * 0.9);
    // The probe as it was stores the whole chunk (so the check above can fail).
    expect((await gzipOf([input], { probeSamples: 4, probeBytes: 8192 })).length).toBeGreaterThan(input.length);
  });

  it('is read by GNU gzip', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pgz-'));
    try {
      const f = path.join(dir, 'x.gz');
      const input = Buffer.concat([mixed, randomBytes(chunk + 5)]);
      writeFileSync(f, await gzipOf([input], { chunkSize: chunk }));
      const out = execFileSync('gzip', ['-dc', f], { maxBuffer: 64 * 1024 * 1024 });
      expect(out.equals(input)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a level outside 1-9', () => {
    expect(() => new ParallelGzip({ level: 0 })).toThrow(RangeError);
  });
});
