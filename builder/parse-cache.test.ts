import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deserialize, serialize } from 'node:v8';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockerfileError, parseDockerfile } from './dockerfile/index.js';
import { ParseCache } from './parse-cache.js';
import { CONFORMANCE_DIR, conformanceCases } from '../test/helpers/conformance.js';

const TEXT = '# check=skip=all\nFROM busybox AS base\nARG X=1\n# check=error=true\nRUN echo $X \\\n\n  && true\nCOPY <<EOF /a\nhello\nEOF\n';

describe('ParseCache', () => {
  let dir: string;
  let calls: number;
  const counted = (text: string, fileName: string) => {
    calls++;
    return parseDockerfile(text, fileName);
  };

  beforeEach(async () => {
    dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'bl-parses-')), 'parse-cache');
    calls = 0;
  });
  afterEach(async () => {
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  const entries = async () => (await readdir(dir).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}$/.test(n));

  it('keeps nothing without a code id, and parses every time', async () => {
    const cache = new ParseCache(dir, undefined, counted);
    await cache.get(TEXT, 'Dockerfile');
    await cache.get(TEXT, 'Dockerfile');
    expect(calls).toBe(2);
    expect(await entries()).toEqual([]);
  });

  it('gives a kept parse back, equal to a fresh one, without parsing', async () => {
    const cache = new ParseCache(dir, 'code-a', counted);
    const first = await cache.get(TEXT, 'Dockerfile');
    const again = await new ParseCache(dir, 'code-a', counted).get(TEXT, 'Dockerfile');
    expect(calls).toBe(1);
    expect(await entries()).toHaveLength(1);
    expect(again).toStrictEqual(first);
    expect(again).toStrictEqual(parseDockerfile(TEXT, 'Dockerfile'));
    expect(again.checkText.comments.get(5)).toBe('error=true');
  });

  it('parses again for other code, another file name or other text', async () => {
    await new ParseCache(dir, 'code-a', counted).get(TEXT, 'Dockerfile');
    await new ParseCache(dir, 'code-b', counted).get(TEXT, 'Dockerfile');
    const renamed = await new ParseCache(dir, 'code-a', counted).get(TEXT, 'app.Dockerfile');
    await new ParseCache(dir, 'code-a', counted).get(`${TEXT}USER 1000\n`, 'Dockerfile');
    expect(calls).toBe(4);
    expect(await entries()).toHaveLength(4);
    // The file name is in every range: a parse of another name must not answer for it.
    expect(renamed.instructions[0]!.range.file).toBe('app.Dockerfile');
  });

  it('parses again over a damaged entry, and replaces it', async () => {
    const cache = new ParseCache(dir, 'code-a', counted);
    await cache.get(TEXT, 'Dockerfile');
    const [name] = await entries();
    const file = path.join(dir, name!);
    const bytes = await readFile(file);
    // A change that still deserializes, to other words: only the digest tells.
    const at = bytes.indexOf('busybox', 32, 'latin1');
    expect(at).toBeGreaterThan(0);
    bytes[at] = 'c'.charCodeAt(0);
    await writeFile(file, bytes);
    expect(await cache.get(TEXT, 'Dockerfile')).toStrictEqual(parseDockerfile(TEXT, 'Dockerfile'));
    expect(calls).toBe(2);
    await writeFile(file, bytes.subarray(0, 10));
    await cache.get(TEXT, 'Dockerfile');
    expect(calls).toBe(3);
    await cache.get(TEXT, 'Dockerfile');
    expect(calls).toBe(3);
  });

  it('keeps no parse of a Dockerfile that does not parse: the error comes each time, with its line', async () => {
    const cache = new ParseCache(dir, 'code-a', counted);
    const bad = 'FROM busybox\nCOPY --chown=1 onlyone\n';
    for (let i = 0; i < 2; i++) {
      const err = await cache.get(bad, 'Dockerfile').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DockerfileError);
      expect((err as DockerfileError).range?.startLine).toBe(2);
    }
    expect(calls).toBe(2);
    expect(await entries()).toEqual([]);
  });

  it('keeps at most 64 parses, dropping the oldest', async () => {
    const cache = new ParseCache(dir, 'code-a', counted);
    for (let i = 0; i < 70; i++) await cache.get(`FROM busybox\nRUN echo ${i}\n`, 'Dockerfile');
    expect(await entries()).toHaveLength(64);
    calls = 0;
    await cache.get('FROM busybox\nRUN echo 69\n', 'Dockerfile');
    expect(calls).toBe(0);
  });
});

/**
 * What the cache keeps is the parse as node:v8 serializes it: plain data,
 * Maps and Sets come back as they were, a class instance would come back as
 * a plain object. Every Dockerfile we have must come back strictly equal.
 */
describe('a parse survives serialization', () => {
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const golden = path.join(repo, 'test', 'golden');
  const files = [
    ...readdirSync(golden).filter((f) => f.endsWith('.Dockerfile')).map((f) => path.join(golden, f)),
    ...['examples/hello/Dockerfile', 'examples/busybox-base/Dockerfile'].map((f) => path.join(repo, f)),
    ...readdirSync(path.join(repo, 'bench', 'workloads')).map((w) => path.join(repo, 'bench', 'workloads', w, 'Dockerfile')),
    ...conformanceCases().map((c) => path.join(CONFORMANCE_DIR, 'cases', c, 'Dockerfile')),
  ];

  it.each(files.map((f) => [path.relative(path.dirname(repo), f), f]))('%s', (_name, file) => {
    let parsed;
    try {
      parsed = parseDockerfile(readFileSync(file, 'utf8'));
    } catch (err) {
      // A case that expects a parse error has nothing to keep.
      expect(err).toBeInstanceOf(DockerfileError);
      return;
    }
    expect(deserialize(serialize(parsed))).toStrictEqual(parsed);
  });
});
