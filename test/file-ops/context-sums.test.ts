import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ContextHasher } from '../../builder/solver/context-sums.js';
import { tempDir } from './helpers.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let ctx: string;
let state: string;
let reads: string[];
let hasher: ContextHasher;
let n = 0;

const w = (rel: string, data: string, mode = 0o644) => {
  const p = path.join(ctx, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, data);
  chmodSync(p, mode);
};

beforeAll(async () => {
  tmp = await tempDir('context-sums');
});
afterAll(async () => {
  await tmp?.cleanup();
});

beforeEach(() => {
  n++;
  ctx = path.join(tmp.dir, `ctx-${n}`);
  state = path.join(tmp.dir, `state-${n}`);
  mkdirSync(ctx);
  w('src/a.ts', 'export const a = 1;\n');
  w('src/b.ts', 'export const b = 2;\n');
  w('src/deep/c.ts', 'c\n');
  w('README.md', 'readme\n');
  w('notes.txt', 'notes\n');
  w('build/out.o', 'obj\n');
  // Larger than the synchronous read size: hashed through the async path.
  w('src/big.bin', 'x'.repeat(3 * 1024 * 1024));
  symlinkSync('a.ts', path.join(ctx, 'src/link'));
  reads = [];
  hasher = new ContextHasher(state, { onRead: (p) => reads.push(p) });
});

const ALL = { excludes: [] as string[], ignore: [] as string[] };
const sum = (paths: string[], opts = ALL, h = hasher) => h.checksumForCopy(ctx, paths, opts);

describe('ContextHasher.checksumForCopy', () => {
  it('is stable and ignores mtime', async () => {
    const first = await sum(['src']);
    utimesSync(path.join(ctx, 'src/a.ts'), new Date('2001-01-01'), new Date('2001-01-01'));
    expect(await sum(['src'])).toBe(first);
    expect(first).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it.each<[string, () => void]>([
    ['a changed byte', () => w('src/a.ts', 'export const a = 2;\n')],
    ['a changed mode', () => chmodSync(path.join(ctx, 'src/a.ts'), 0o755)],
    ['a changed last byte of a large file', () => w('src/big.bin', `${'x'.repeat(3 * 1024 * 1024 - 1)}y`)],
    ['an added file', () => w('src/new.ts', 'new\n')],
    ['an added empty dir', () => mkdirSync(path.join(ctx, 'src/empty'))],
    ['a removed file', () => rmSync(path.join(ctx, 'src/b.ts'))],
    ['a renamed file', () => execFileSync('mv', [path.join(ctx, 'src/b.ts'), path.join(ctx, 'src/bb.ts')])],
    ['a changed link target', () => {
      rmSync(path.join(ctx, 'src/link'));
      symlinkSync('b.ts', path.join(ctx, 'src/link'));
    }],
    ['a file turned into a link', () => {
      rmSync(path.join(ctx, 'src/b.ts'));
      symlinkSync('a.ts', path.join(ctx, 'src/b.ts'));
    }],
    ['a changed dir mode', () => chmodSync(path.join(ctx, 'src/deep'), 0o700)],
  ])('changes with %s in the selection', async (_name, edit) => {
    const before = await sum(['src']);
    edit();
    expect(await sum(['src'])).not.toBe(before);
  });

  it.each<[string, string[], { excludes: string[]; ignore: string[] }, () => void]>([
    ['a file outside the selected paths', ['src'], ALL, () => w('notes.txt', 'changed\n')],
    ['an ignored file', ['.'], { excludes: [], ignore: ['build', '*.md'] }, () => w('build/out.o', 'changed\n')],
    ['an ignored file (pattern)', ['.'], { excludes: [], ignore: ['build', '*.md'] }, () => w('README.md', 'changed\n')],
    ['an --exclude file', ['src'], { excludes: ['deep'], ignore: [] }, () => w('src/deep/c.ts', 'changed\n')],
    ['a file the wildcard does not match', ['src/*.ts'], ALL, () => w('src/deep/c.ts', 'changed\n')],
    ['a file added where the wildcard does not match', ['*.txt'], ALL, () => w('other.md', 'new\n')],
  ])('does not change with %s', async (_name, paths, opts, edit) => {
    const before = await sum(paths, opts);
    edit();
    expect(await sum(paths, opts)).toBe(before);
  });

  it('tells selections apart', async () => {
    const digests = new Set([await sum(['src']), await sum(['src/*.ts']), await sum(['notes.txt']), await sum(['README.md']), await sum(['.'])]);
    expect(digests.size).toBe(5);
  });

  it('does not re-read unchanged files, in process and after a restart', async () => {
    await sum(['.']);
    expect(reads.sort()).toEqual(['README.md', 'build/out.o', 'notes.txt', 'src/a.ts', 'src/b.ts', 'src/big.bin', 'src/deep/c.ts']);
    reads.length = 0;
    await sum(['.']);
    expect(reads).toEqual([]);
    w('src/a.ts', 'changed\n');
    await sum(['.']);
    expect(reads).toEqual(['src/a.ts']);

    // A new hasher over the same state dir starts warm.
    const restartedReads: string[] = [];
    const restarted = new ContextHasher(state, { onRead: (p) => restartedReads.push(p) });
    expect(await sum(['.'], ALL, restarted)).toBe(await sum(['.']));
    expect(restartedReads).toEqual([]);
  });

  it('fails naming a missing source, and never opens FIFOs', async () => {
    await expect(sum(['nope'])).rejects.toThrow(/nope/);
    execFileSync('mkfifo', [path.join(ctx, 'src/pipe')]);
    // Reading a FIFO would hang; hashing must finish.
    const d = await sum(['src']);
    expect(d).toMatch(/^sha256:/);
    expect(reads).not.toContain('src/pipe');
  });

  it('does not follow links out of the context', async () => {
    symlinkSync('/etc', path.join(ctx, 'etc-link'));
    const withLink = await sum(['.']);
    rmSync(path.join(ctx, 'etc-link'));
    symlinkSync('/etc', path.join(ctx, 'etc-link'));
    expect(await sum(['.'])).toBe(withLink);
    expect(reads.some((r) => r.startsWith('etc-link'))).toBe(false);
    await expect(sum(['etc-link/passwd'])).rejects.toThrow(/etc-link/);
  });

  describe('--parents', () => {
    const P = { ...ALL, parents: true };
    it.each<[string, string[], () => void, boolean]>([
      ['a file the pattern matches changes it', ['src/**/*.ts'], () => w('src/deep/c.ts', 'c2\n'), true],
      ['a file the pattern skips does not', ['src/**/*.ts'], () => w('src/big.bin', 'y'), false],
      ['a new match changes it', ['src/**/*.ts'], () => w('src/new/d.ts', 'd\n'), true],
      ['a new directory with no match does not', ['src/**/*.ts'], () => mkdirSync(path.join(ctx, 'src/empty')), false],
      ['a file outside the base does not', ['src/./deep/c.ts'], () => w('src/a.ts', 'changed\n'), false],
    ])('%s', async (_name, paths, change, differs) => {
      const before = await sum(paths, P);
      change();
      expect((await sum(paths, P)) !== before).toBe(differs);
    });

    it('keeps paths apart from a plain copy and the pivot apart from none', async () => {
      const plain = await sum(['src/deep/c.ts']);
      const kept = await sum(['src/deep/c.ts'], P);
      const pivoted = await sum(['src/./deep/c.ts'], P);
      expect(new Set([plain, kept, pivoted]).size).toBe(3);
    });

    it('reads only what the pattern selects', async () => {
      await sum(['**/*.md'], P);
      expect(reads).toEqual(['README.md']);
    });
  });

  it('hashes 5,000 cached files quickly', async () => {
    for (let i = 0; i < 50; i++) {
      mkdirSync(path.join(ctx, `many/d${i}`), { recursive: true });
      for (let j = 0; j < 100; j++) writeFileSync(path.join(ctx, `many/d${i}/f${j}.txt`), `${i}-${j}\n`);
    }
    const cold = await sum(['many']);
    expect(reads.length).toBe(5000);
    reads.length = 0;
    const t0 = performance.now();
    expect(await sum(['many'])).toBe(cold);
    const ms = performance.now() - t0;
    expect(reads.length).toBe(0);
    // Generous bound for a loaded CI box; the aim is well under 100 ms.
    expect(ms).toBeLessThan(1000);
    console.log(`warm checksum of 5,000 files: ${ms.toFixed(1)} ms`);
  });
});
