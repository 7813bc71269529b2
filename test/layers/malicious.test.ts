import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { MediaType } from '../../core/oci.js';
import { applyLayer, extractTar } from '../../builder/layers/index.js';
import { describeTree } from './tree.js';

interface Item {
  readonly header: Partial<tarStream.Header> & { name: string };
  readonly body?: string;
}

async function tarOf(items: Item[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const it of items) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ ...it.header, mode: it.header.mode ?? 0o644, mtime: it.header.mtime ?? new Date(0) }, it.body ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const root = mkdtemp(path.join(os.tmpdir(), 'layers-evil-'));
let jail: string;
let target: string;
let outside: string;

beforeEach(async () => {
  jail = await mkdtemp(path.join(await root, 'jail-'));
  target = path.join(jail, 'target');
  outside = path.join(jail, 'outside');
  await mkdir(target);
  await mkdir(outside);
  await writeFile(path.join(outside, 'sentinel'), 'safe');
  await writeFile(path.join(outside, 'secret'), 'secret');
});

afterAll(async () => {
  await rm(await root, { recursive: true, force: true });
});

/** Applies the tar; returns the error (if any) and asserts nothing outside the target changed. */
async function applyEvil(items: Item[]): Promise<unknown> {
  const before = await describeTree(outside);
  const jailBefore = (await readdir(jail)).sort();
  const etcPasswd = await readFile('/etc/passwd', 'utf8');
  let error: unknown;
  try {
    await applyLayer(Readable.from([await tarOf(items)]), MediaType.OciLayer, target);
  } catch (err) {
    error = err;
  }
  expect(await describeTree(outside)).toEqual(before);
  expect((await readdir(jail)).sort()).toEqual(jailBefore);
  expect(await readFile('/etc/passwd', 'utf8')).toBe(etcPasswd);
  expect((await stat(path.join(outside, 'secret'))).nlink).toBe(1);
  return error;
}

describe('layer application refuses or contains hostile tars (docs/security.md T3)', () => {
  it('refuses ../ names', async () => {
    const err = await applyEvil([{ header: { name: '../x' }, body: 'x' }]);
    expect(err).toMatchObject({ code: 'UNSAFE_PATH' });
    const err2 = await applyEvil([{ header: { name: 'a/../../outside/sentinel' }, body: 'pwned' }]);
    expect(err2).toMatchObject({ code: 'UNSAFE_PATH' });
  });

  it('refuses absolute names', async () => {
    const err = await applyEvil([{ header: { name: `${outside}/sentinel` }, body: 'pwned' }]);
    expect(err).toMatchObject({ code: 'UNSAFE_PATH' });
    expect(await applyEvil([{ header: { name: '/etc/x' }, body: 'x' }])).toMatchObject({ code: 'UNSAFE_PATH' });
  });

  it('contains a write through a symlink to / inside the target', async () => {
    const err = await applyEvil([
      { header: { name: 'a', type: 'symlink', linkname: '/' } },
      { header: { name: `a${outside}/sentinel` }, body: 'pwned' },
    ]);
    expect(err).toBeUndefined();
    expect(await readFile(path.join(target, outside, 'sentinel'), 'utf8')).toBe('pwned');
    expect(await readlink(path.join(target, 'a'))).toBe('/');
  });

  it('contains a write through an absolute symlink to a host dir', async () => {
    const err = await applyEvil([
      { header: { name: 'b', type: 'symlink', linkname: outside } },
      { header: { name: 'b/sentinel' }, body: 'pwned' },
    ]);
    expect(err).toBeUndefined();
    expect(await readFile(path.join(target, outside, 'sentinel'), 'utf8')).toBe('pwned');
  });

  it('contains a symlink to .. and writes through it', async () => {
    const err = await applyEvil([
      { header: { name: 'up', type: 'symlink', linkname: '..' } },
      { header: { name: 'up/outside/sentinel' }, body: 'pwned' },
      { header: { name: 'deep/up2', type: 'symlink', linkname: '../../../..' } },
      { header: { name: 'deep/up2/escaped' }, body: 'pwned' },
    ]);
    expect(err).toBeUndefined();
    expect(await readFile(path.join(target, 'outside/sentinel'), 'utf8')).toBe('pwned');
    expect(await readFile(path.join(target, 'escaped'), 'utf8')).toBe('pwned');
  });

  it('contains a symlink written by an earlier layer', async () => {
    expect(await applyEvil([{ header: { name: 'prev', type: 'symlink', linkname: outside } }])).toBeUndefined();
    expect(await applyEvil([{ header: { name: 'prev/new-file' }, body: 'pwned' }])).toBeUndefined();
    expect(await readFile(path.join(target, outside, 'new-file'), 'utf8')).toBe('pwned');
  });

  it('replaces a symlink with a file instead of writing through it', async () => {
    const err = await applyEvil([
      { header: { name: 'f', type: 'symlink', linkname: path.join(outside, 'sentinel') } },
      { header: { name: 'f' }, body: 'pwned' },
    ]);
    expect(err).toBeUndefined();
    expect((await lstat(path.join(target, 'f'))).isFile()).toBe(true);
  });

  it('refuses hardlinks to host files, absolute or through .. or symlinks', async () => {
    expect(await applyEvil([{ header: { name: 'h', type: 'link', linkname: '/etc/shadow' } }])).toMatchObject({
      code: 'UNSAFE_PATH',
    });
    expect(await applyEvil([{ header: { name: 'h', type: 'link', linkname: '../outside/secret' } }])).toMatchObject({
      code: 'UNSAFE_PATH',
    });
    const err = await applyEvil([
      { header: { name: 's', type: 'symlink', linkname: outside } },
      { header: { name: 'h', type: 'link', linkname: 's/secret' } },
    ]);
    expect(err).toMatchObject({ code: 'UNSAFE_PATH' });
    await expect(lstat(path.join(target, 'h'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('allows a hardlink to a file inside the target', async () => {
    const err = await applyEvil([
      { header: { name: 'x' }, body: 'inside' },
      { header: { name: 'y', type: 'link', linkname: 'x' } },
    ]);
    expect(err).toBeUndefined();
    expect((await stat(path.join(target, 'y'))).nlink).toBe(2);
  });

  it('refuses whiteout tricks and keeps whiteouts inside', async () => {
    expect(await applyEvil([{ header: { name: '.wh...' }, body: '' }])).toMatchObject({ code: 'UNSAFE_PATH' });
    expect(await applyEvil([{ header: { name: 'sub/.wh..' }, body: '' }])).toMatchObject({ code: 'UNSAFE_PATH' });
    expect(await applyEvil([{ header: { name: '.wh.' }, body: '' }])).toMatchObject({ code: 'UNSAFE_PATH' });
    // A whiteout under a symlink to the host removes inside the target only.
    const err = await applyEvil([
      { header: { name: 'w', type: 'symlink', linkname: outside } },
      { header: { name: 'w/.wh.sentinel' }, body: '' },
      { header: { name: 'w/.wh..wh..opq' }, body: '' },
    ]);
    expect(err).toBeUndefined();
  });

  it('enforces entry count, depth and size limits', async () => {
    const many = Array.from({ length: 5 }, (_, i) => ({ header: { name: `f${i}` }, body: 'x' }));
    await expect(
      applyLayer(Readable.from([await tarOf(many)]), MediaType.OciLayer, target, { limits: { maxEntries: 3 } }),
    ).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    const deep = [{ header: { name: `${'d/'.repeat(20)}f` }, body: 'x' }];
    await expect(
      applyLayer(Readable.from([await tarOf(deep)]), MediaType.OciLayer, target, { limits: { maxDepth: 10 } }),
    ).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    const big = [{ header: { name: 'big' }, body: 'x'.repeat(100_000) }];
    await expect(
      applyLayer(Readable.from([await tarOf(big)]), MediaType.OciLayer, target, { limits: { maxBytes: 10_000 } }),
    ).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
  });

  it('refuses a corrupt or truncated tar with a typed error', async () => {
    const good = await tarOf([{ header: { name: 'a' }, body: 'x'.repeat(2000) }]);
    const corrupt = Buffer.from(good);
    corrupt[10] = 0x41;
    await expect(applyLayer(Readable.from([corrupt]), MediaType.OciLayer, target)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(applyLayer(Readable.from([good.subarray(0, 1000)]), MediaType.OciLayer, target)).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});

describe('extractTar for ADD of local archives', () => {
  it('extracts .tar, .tar.gz, .tar.bz2 and .tar.xz with owners and modes, .wh. files kept as files', async () => {
    const src = path.join(jail, 'src');
    await mkdir(path.join(src, 'dir'), { recursive: true });
    await writeFile(path.join(src, 'dir/file'), 'content');
    await writeFile(path.join(src, '.wh.notawhiteout'), 'plain');
    execFileSync('chown', ['1234:4321', path.join(src, 'dir/file')]);
    execFileSync('chmod', ['0600', path.join(src, 'dir/file')]);
    for (const [flag, ext] of [['', 'tar'], ['-z', 'tar.gz'], ['-j', 'tar.bz2'], ['-J', 'tar.xz']] as const) {
      const archive = path.join(jail, `a.${ext}`);
      execFileSync('tar', ['-c', ...(flag ? [flag] : []), '-f', archive, '-C', src, '.']);
      const dest = path.join(jail, `out-${ext.replace(/\./g, '-')}`);
      await mkdir(dest);
      const res = await extractTar(createReadStream(archive), dest, { whiteouts: false });
      expect(res.entries).toBeGreaterThanOrEqual(4);
      expect(await readFile(path.join(dest, 'dir/file'), 'utf8')).toBe('content');
      const st = await stat(path.join(dest, 'dir/file'));
      expect([st.uid, st.gid, st.mode & 0o777]).toEqual([1234, 4321, 0o600]);
      expect(await readFile(path.join(dest, '.wh.notawhiteout'), 'utf8')).toBe('plain');
    }
  });

  it('fails clearly on a corrupt xz archive', async () => {
    const bad = path.join(jail, 'bad.tar.xz');
    await writeFile(bad, Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(100, 7)]));
    const dest = path.join(jail, 'out-bad');
    await mkdir(dest);
    await expect(extractTar(createReadStream(bad), dest, { whiteouts: false })).rejects.toThrow(/xz/);
  });
});

describe('a directory the extractor already used, swapped for a symlink later in the same tar', () => {
  it('keeps writes under that name inside the target (the parent-directory cache is dropped)', async () => {
    const err = await applyEvil([
      { header: { name: 'a/', type: 'directory', mode: 0o755 } },
      { header: { name: 'a/first', type: 'file' }, body: 'one' },
      { header: { name: 'a', type: 'symlink', linkname: outside } },
      { header: { name: 'a/second', type: 'file' }, body: 'escaped?' },
      { header: { name: 'b/c/', type: 'directory', mode: 0o755 } },
      { header: { name: 'b', type: 'symlink', linkname: '../outside' } },
      { header: { name: 'b/c/third', type: 'file' }, body: 'escaped?' },
    ]);
    // Either refused or contained; applyEvil already checked that nothing outside changed.
    if (!err) {
      expect((await lstat(path.join(target, 'a'))).isSymbolicLink()).toBe(true);
      expect(await readdir(outside)).not.toContain('second');
    }
  });
});
