import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, digestFromHash, digestHex, digestJson, InvalidDigestError, isDigest, parseDigest, sha256 } from './digest.js';
import { BuildliteError, toWire } from './errors.js';

const HEX = 'a'.repeat(64);

describe('parseDigest', () => {
  it('accepts sha256 with 64 lowercase hex', () => {
    expect(parseDigest(`sha256:${HEX}`)).toBe(`sha256:${HEX}`);
    expect(isDigest(`sha256:${'0123456789abcdef'.repeat(4)}`)).toBe(true);
  });

  it.each([
    ['empty', ''],
    ['no algorithm', HEX],
    ['upper-case hex', `sha256:${'A'.repeat(64)}`],
    ['short', `sha256:${'a'.repeat(63)}`],
    ['long', `sha256:${'a'.repeat(65)}`],
    ['other algorithm', `sha512:${'a'.repeat(128)}`],
    ['non-hex', `sha256:${'g'.repeat(64)}`],
    ['trailing newline', `sha256:${HEX}\n`],
    ['leading space', ` sha256:${HEX}`],
    ['path traversal', `sha256:../../${'a'.repeat(58)}`],
  ])('rejects %s', (_name, value) => {
    expect(isDigest(value)).toBe(false);
    expect(() => parseDigest(value)).toThrow(InvalidDigestError);
  });

  it('rejects non-strings in isDigest', () => {
    expect(isDigest(undefined)).toBe(false);
    expect(isDigest(42)).toBe(false);
    expect(isDigest({ toString: () => `sha256:${HEX}` })).toBe(false);
  });

  it('is a typed, coded error that truncates what it echoes', () => {
    const long = 'x'.repeat(10_000);
    let err: unknown;
    try {
      parseDigest(long);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BuildliteError);
    expect((err as InvalidDigestError).code).toBe('INVALID_DIGEST');
    expect((err as Error).message.length).toBeLessThan(200);
    expect(toWire(err).code).toBe('INVALID_DIGEST');
  });
});

describe('sha256 helpers', () => {
  it('hashes strings and bytes alike', () => {
    const want = `sha256:${createHash('sha256').update('hello').digest('hex')}`;
    expect(sha256('hello')).toBe(want);
    expect(sha256(Buffer.from('hello'))).toBe(want);
    expect(sha256(new TextEncoder().encode('hello'))).toBe(want);
    expect(digestFromHash(createHash('sha256').update('hel').update('lo'))).toBe(want);
  });

  it('knows the empty digest', () => {
    expect(sha256('')).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('digestHex strips the algorithm', () => {
    expect(digestHex(parseDigest(`sha256:${HEX}`))).toBe(HEX);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth, whatever the insertion order', () => {
    const a = { b: 1, a: { d: [{ z: 1, y: 2 }], c: 'x' } };
    const b = { a: { c: 'x', d: [{ y: 2, z: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe('{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
  });

  it('keeps array order (it carries meaning)', () => {
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
  });

  it('drops undefined members, and encodes undefined in arrays as null, as JSON does', () => {
    expect(canonicalJson({ a: undefined, b: null })).toBe('{"b":null}');
    expect(canonicalJson([undefined, 1])).toBe('[null,1]');
    expect(canonicalJson({ a: undefined })).toBe(canonicalJson({}));
  });

  it('has no whitespace and escapes strings as JSON', () => {
    expect(canonicalJson({ 'k y': 'a "q"\n' })).toBe('{"k y":"a \\"q\\"\\n"}');
  });

  it('encodes primitives as JSON', () => {
    expect(canonicalJson('s')).toBe('"s"');
    expect(canonicalJson(1.5)).toBe('1.5');
    expect(canonicalJson(true)).toBe('true');
    expect(canonicalJson(null)).toBe('null');
  });

  it('encodes a Date through toJSON, as JSON.stringify does, not as {}', () => {
    const d = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    expect(canonicalJson({ t: d })).toBe('{"t":"2024-01-02T03:04:05.000Z"}');
  });

  it('is stable: many shuffles of one object give one string', () => {
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    const seen = new Set<string>();
    for (let round = 0; round < 20; round++) {
      const shuffled = [...keys].sort(() => Math.random() - 0.5);
      const obj: Record<string, unknown> = {};
      for (const k of shuffled) obj[k] = { inner: k, n: k.length };
      seen.add(canonicalJson(obj));
    }
    expect(seen.size).toBe(1);
  });
});

describe('digestJson', () => {
  it('is the sha256 of tag, NUL, canonical JSON', () => {
    expect(digestJson('exec', { b: 1, a: 2 })).toBe(sha256('exec\0{"a":2,"b":1}'));
  });

  it('does not depend on key order', () => {
    expect(digestJson('t', { a: 1, b: 2 })).toBe(digestJson('t', { b: 2, a: 1 }));
  });

  it('separates kinds: one value under two tags gives two digests', () => {
    expect(digestJson('exec', { a: 1 })).not.toBe(digestJson('file', { a: 1 }));
  });

  it('a tag cannot be forged by moving bytes between tag and value', () => {
    // Without the separator, ("ab", "c") and ("a", "bc") could collide.
    expect(digestJson('a', 'bc')).not.toBe(digestJson('a"', 'c'));
    expect(digestJson('ex', { ec: 1 })).not.toBe(digestJson('exec', {}));
  });

  it('changes with any value change', () => {
    expect(digestJson('t', { a: 1 })).not.toBe(digestJson('t', { a: 2 }));
    expect(digestJson('t', { a: '1' })).not.toBe(digestJson('t', { a: 1 }));
  });
});
