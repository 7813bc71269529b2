import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { sha256 } from './digest.js';
import { DigestMismatchError, HashingTap, LimitExceededError, limitBytes, readAllBounded, verifyDigest } from './streams.js';

/** A source that yields `chunks` and records how many it was asked for. */
function source(chunks: Buffer[]): { stream: Readable; pulled: () => number } {
  let n = 0;
  async function* gen() {
    for (const c of chunks) {
      n++;
      yield c;
    }
  }
  return { stream: Readable.from(gen(), { objectMode: false }), pulled: () => n };
}

/** A sink that keeps what it got. */
function sink(): { stream: Writable; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  return {
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        parts.push(chunk);
        cb();
      },
    }),
    bytes: () => Buffer.concat(parts),
  };
}

const data = [Buffer.from('hello '), Buffer.from('layered '), Buffer.from('world')];
const whole = Buffer.concat(data);

describe('verifyDigest', () => {
  it('passes matching bytes through unchanged', async () => {
    const out = sink();
    await pipeline(source(data).stream, verifyDigest({ digest: sha256(whole), size: whole.length }), out.stream);
    expect(out.bytes().equals(whole)).toBe(true);
  });

  it('works without a size', async () => {
    const out = sink();
    await pipeline(source(data).stream, verifyDigest({ digest: sha256(whole) }), out.stream);
    expect(out.bytes().length).toBe(whole.length);
  });

  it('fails at end of stream on a wrong digest, so the sink never sees a clean finish', async () => {
    let finished = false;
    const out = new Writable({
      write(_c, _e, cb) {
        cb();
      },
      final(cb) {
        finished = true;
        cb();
      },
    });
    const want = { digest: sha256('something else'), size: whole.length };
    const err = await pipeline(source(data).stream, verifyDigest(want, 'layer'), out).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    const e = err as DigestMismatchError;
    expect(e.code).toBe('DIGEST_MISMATCH');
    expect(e.message).toContain('digest mismatch');
    expect(e.got).toEqual({ digest: sha256(whole), size: whole.length });
    expect(e.details()).toEqual({ want: want.digest, got: sha256(whole), bytes: whole.length });
    expect(finished).toBe(false);
  });

  it('fails at end of stream when fewer bytes than announced arrive', async () => {
    const err = await pipeline(
      source(data).stream,
      verifyDigest({ digest: sha256(whole), size: whole.length + 1 }),
      sink().stream,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as Error).message).toContain('size mismatch');
  });

  it('fails as soon as more bytes than announced arrive, without reading the rest', async () => {
    const big = Array.from({ length: 1000 }, () => Buffer.alloc(1024, 1));
    const src = source(big);
    const err = await pipeline(src.stream, verifyDigest({ digest: sha256('x'), size: 2048 }), sink().stream).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).got.size).toBe(3072);
    // Stream buffering may pull a few chunks ahead, never the whole source.
    expect(src.pulled()).toBeLessThan(100);
  });

  it('accepts an empty blob with the empty digest', async () => {
    await pipeline(source([]).stream, verifyDigest({ digest: sha256(''), size: 0 }), sink().stream);
  });
});

describe('limitBytes', () => {
  it('passes exactly the limit', async () => {
    const out = sink();
    await pipeline(source(data).stream, limitBytes(whole.length, 'body'), out.stream);
    expect(out.bytes().equals(whole)).toBe(true);
  });

  it('fails one byte past the limit with a coded error naming what', async () => {
    const err = await pipeline(source(data).stream, limitBytes(whole.length - 1, 'error body'), sink().stream).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LimitExceededError);
    expect((err as LimitExceededError).code).toBe('LIMIT_EXCEEDED');
    expect((err as Error).message).toContain('error body');
    expect((err as Error).message).toContain(String(whole.length - 1));
  });
});

describe('HashingTap', () => {
  it('hashes and counts what passes, and reports progress', async () => {
    const progress: number[] = [];
    const tap = new HashingTap((n) => progress.push(n));
    const out = sink();
    await pipeline(source(data).stream, tap, out.stream);
    expect(tap.digest()).toBe(sha256(whole));
    expect(tap.digest()).toBe(sha256(whole)); // a second call returns the same
    expect(tap.size).toBe(whole.length);
    expect(progress).toEqual([6, 14, 19]);
    expect(out.bytes().equals(whole)).toBe(true);
  });
});

describe('readAllBounded', () => {
  it('reads strings, buffers and typed arrays', async () => {
    const backing = Buffer.from('xxghxx');
    async function* mixed() {
      yield 'ab';
      yield Buffer.from('cd');
      yield new Uint8Array([101, 102]);
      // A view into a larger buffer: only the view's bytes count.
      yield new Uint8Array(backing.buffer, backing.byteOffset + 2, 2);
    }
    expect((await readAllBounded(mixed(), 100, 'doc')).toString()).toBe('abcdefgh');
  });

  it('fails past the limit', async () => {
    await expect(readAllBounded(source(data).stream, 10, 'manifest')).rejects.toThrow(LimitExceededError);
    await expect(readAllBounded(source(data).stream, whole.length, 'manifest')).resolves.toHaveLength(whole.length);
  });
});
