import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { sha256 } from './digest.js';
import {
  BuildliteError,
  CodedError,
  ERROR_CODES,
  fromWire,
  isCancelled,
  RemoteError,
  toWire,
  withLocation,
  type ErrorCode,
  type SourceRange,
  type WireError,
} from './errors.js';
import { DigestMismatchError } from './streams.js';

const repo = fileURLToPath(new URL('../', import.meta.url));
const SOURCE_DIRS = ['core', 'builder', 'registry-client', 'cache', 'worker', 'api', 'cli'];

async function* tsFiles(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return; // a folder not written yet
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) yield p;
  }
}

/**
 * Codes that classes declare (`code = 'X'`, `code: ErrorCode = 'X'`) or that
 * CodedError is built with (`new CodedError('X'`). The typed forms are checked
 * by tsc too; the untyped `readonly code = 'X'` is the hole this closes.
 */
const CODE_PATTERNS = [/\bcode\s*(?::\s*ErrorCode\s*)?=\s*'([A-Z][A-Z0-9_]*)'/g, /\bnew CodedError\(\s*'([A-Z][A-Z0-9_]*)'/g];

describe('ERROR_CODES', () => {
  it('documents every code with a sentence', () => {
    const codes = Object.keys(ERROR_CODES);
    expect(codes.length).toBeGreaterThan(10);
    for (const [code, doc] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(doc.length, code).toBeGreaterThan(10);
    }
  });

  it('has every code the source tree uses', async () => {
    const used = new Map<string, string>();
    for (const dir of SOURCE_DIRS) {
      for await (const file of tsFiles(path.join(repo, dir))) {
        const text = await readFile(file, 'utf8');
        for (const re of CODE_PATTERNS) {
          for (const m of text.matchAll(re)) used.set(m[1]!, path.relative(repo, file));
        }
      }
    }
    // The scan must see the core classes, or it proves nothing.
    expect([...used.keys()]).toEqual(expect.arrayContaining(['DIGEST_MISMATCH', 'UNSAFE_PATH', 'INVALID_DIGEST']));
    const undocumented = [...used].filter(([code]) => !(code in ERROR_CODES)).map(([code, file]) => `${code} (${file})`);
    expect(undocumented).toEqual([]);
  });
});

describe('BuildliteError', () => {
  const range: SourceRange = { file: 'Dockerfile', startLine: 3, endLine: 3, startColumn: 1, endColumn: 9 };

  it('keeps name, code, cause and range', () => {
    const cause = new Error('root');
    const err = new CodedError('EXEC_FAILED', 'RUN failed', { cause, range, retryable: false });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('CodedError');
    expect(err.code).toBe('EXEC_FAILED');
    expect(err.cause).toBe(cause);
    expect(err.range).toEqual(range);
    expect(err.retryable).toBe(false);
    expect(new CodedError('REGISTRY', 'x', { retryable: true }).retryable).toBe(true);
    expect('cause' in new CodedError('INTERNAL', 'no cause')).toBe(false);
  });

  it('subclasses get their own name', () => {
    class ThingError extends BuildliteError {
      readonly code: ErrorCode = 'NOT_FOUND';
    }
    expect(new ThingError('gone').name).toBe('ThingError');
  });

  it('withLocation attaches a range once, at the innermost level that knows it', () => {
    const inner: SourceRange = { file: 'Dockerfile', startLine: 5, endLine: 5 };
    const outer: SourceRange = { file: 'Dockerfile', startLine: 1, endLine: 9 };
    const err = new CodedError('DOCKERFILE', 'bad');
    expect(withLocation(withLocation(err, inner), outer).range).toEqual(inner);
    const plain = new Error('not ours');
    expect(withLocation(plain, inner)).toBe(plain);
    expect('range' in plain).toBe(false);
  });

  it('isCancelled knows CANCELLED and AbortError', () => {
    expect(isCancelled(new CodedError('CANCELLED', 'stop'))).toBe(true);
    const ac = new AbortController();
    ac.abort();
    let abortErr: unknown;
    try {
      ac.signal.throwIfAborted();
    } catch (e) {
      abortErr = e;
    }
    expect(isCancelled(abortErr)).toBe(true);
    expect(isCancelled(new CodedError('INTERNAL', 'x'))).toBe(false);
    expect(isCancelled('CANCELLED')).toBe(false);
  });
});

describe('toWire / fromWire', () => {
  const range: SourceRange = { file: 'Dockerfile', startLine: 2, endLine: 4, startColumn: 1 };

  it('round-trips code, message, retryable, range and details through JSON', () => {
    const want = { digest: sha256('a'), size: 1 };
    const original = new DigestMismatchError(want, { digest: sha256('b'), size: 1 }, 'layer');
    withLocation(original, range);
    const wire = JSON.parse(JSON.stringify(original.toWire())) as WireError;
    expect(wire).toEqual({
      code: 'DIGEST_MISMATCH',
      message: original.message,
      retryable: false,
      range,
      details: { want: sha256('a'), got: sha256('b'), bytes: 1 },
    });
    const back = fromWire(wire);
    expect(back).toBeInstanceOf(BuildliteError);
    expect(back).toBeInstanceOf(RemoteError);
    expect(back.code).toBe('DIGEST_MISMATCH');
    expect(back.message).toBe(original.message);
    expect(back.range).toEqual(range);
    expect(back.details()).toEqual(original.details());
    // Twice across the wire is the same as once.
    expect(toWire(back)).toEqual(wire);
  });

  it('keeps retryable', () => {
    const wire = toWire(new CodedError('REGISTRY', '503 from registry', { retryable: true }));
    expect(wire.retryable).toBe(true);
    expect(fromWire(wire).retryable).toBe(true);
  });

  it('turns errors that are not ours into INTERNAL without losing the message', () => {
    expect(toWire(new TypeError('boom'))).toEqual({ code: 'INTERNAL', message: 'boom', retryable: false });
    expect(toWire('a string')).toEqual({ code: 'INTERNAL', message: 'a string', retryable: false });
    expect(toWire(undefined).code).toBe('INTERNAL');
  });

  it('maps a code this side does not know to INTERNAL (a newer peer must not crash us)', () => {
    const wire = { code: 'FROM_THE_FUTURE', message: 'x', retryable: false } as unknown as WireError;
    expect(fromWire(wire).code).toBe('INTERNAL');
    // A prototype key is not a code either.
    expect(fromWire({ ...wire, code: 'toString' as ErrorCode }).code).toBe('INTERNAL');
  });

  it('omits range when there is none, and always sends details', () => {
    const wire = new CodedError('NOT_FOUND', 'no such stage').toWire();
    expect('range' in wire).toBe(false);
    expect(wire.details).toEqual({});
    expect(fromWire({ code: 'NOT_FOUND', message: 'm', retryable: false }).details()).toEqual({});
  });
});
