import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmod, link, lstat, lutimes, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Builder } from '../../builder/index.js';
import { FileReuse, sameTree } from '../../builder/solver/file-ops/reuse.js';
import { drive, unmountAll, writeTree } from '../helpers/build-driver.js';
import { startBuilderEnv, type BuilderEnv } from '../helpers/builder-env.js';

/**
 * A COPY that reruns after an edit links its unchanged files from its last
 * result (builder/solver/file-ops/reuse.ts). What must hold: the image is
 * exactly the one a builder without that result makes, the earlier result
 * never changes, and files did come from it.
 */
describe('COPY reruns take unchanged files from their last result', () => {
  let env: BuilderEnv;
  let ctx: string;
  // In the future: nothing copied is clamped, so a directory's time the copy got wrong would show.
  // (The copies go to /tree, whose parent exists: no directory gets the time of the build.)
  const EPOCH = Math.floor(Date.now() / 1000) + 10 * 365 * 86_400;
  const FILES = 40;

  const dockerfile = (base: string) =>
    [
      `FROM ${base}`,
      'COPY tree/ /tree/',
      // Writes through to a file the COPY may have linked: overlay must copy it up, never change the donor.
      // Times from the base, so that two builds of this step give the same layer.
      'RUN echo appended >> /tree/d1/f1 && cat /tree/d1/f1 > /seen.txt && touch -r /bin/busybox /tree/d1/f1 /seen.txt /',
      '',
    ].join('\n');

  const build = (builder: Builder, out: string, text = dockerfile(env.base)) =>
    drive(builder, { dockerfile: text, context: { dir: ctx }, sourceDateEpoch: EPOCH, outputs: [{ type: 'local', dest: out }] });

  /** Regular files under the root's snapshots that share their inode with another name. */
  async function linkedSnapshotFiles(root: string): Promise<number> {
    let n = 0;
    for (const e of await readdir(path.join(root, 'snapshots'), { recursive: true, withFileTypes: true })) {
      if (!e.isFile() || !/^f\d+$/.test(e.name)) continue;
      if ((await lstat(path.join(e.parentPath, e.name))).nlink > 1) n++;
    }
    return n;
  }

  beforeAll(async () => {
    env = await startBuilderEnv('copy-reuse');
    ctx = path.join(env.tmp, 'ctx');
    const files: Record<string, string> = {};
    for (let i = 0; i < FILES; i++) files[`tree/d${i % 4}/f${i}`] = `file ${i}\n`.repeat(i + 1);
    files['tree/empty'] = '';
    await writeTree(ctx, files);
    await chmod(path.join(ctx, 'tree/d1/f5'), 0o755);
    await symlink('d0/f0', path.join(ctx, 'tree/link'));
    // Two names of one inode stay a hardlink pair in the image; neither is taken from a donor.
    await link(path.join(ctx, 'tree/d2/f2'), path.join(ctx, 'tree/d2/f2-hard'));
  });

  afterAll(async () => {
    await env?.stop();
  });

  it('gives the image a builder with no earlier result gives, links what did not change, and leaves the earlier result as it was', async () => {
    const first = await build(env.builder, path.join(env.tmp, 'out1'));
    expect(first.error).toBeUndefined();
    const linkedBefore = await linkedSnapshotFiles(path.join(env.tmp, 'root'));

    // One edit, one mode change, one file added, one removed, one directory gone.
    await writeFile(path.join(ctx, 'tree/d3/f7'), 'edited\n');
    await chmod(path.join(ctx, 'tree/d0/f4'), 0o600);
    await writeFile(path.join(ctx, 'tree/d1/new'), 'new file\n');
    await unlink(path.join(ctx, 'tree/d2/f6'));
    await mkdir(path.join(ctx, 'tree/gone'), { recursive: true });
    await writeFile(path.join(ctx, 'tree/gone/x'), 'x\n');
    const second = await build(env.builder, path.join(env.tmp, 'out2'));
    expect(second.error).toBeUndefined();
    expect(second.ran.some((s) => s.includes('COPY tree/'))).toBe(true);

    // Files came from the first result: many more names share an inode now.
    const linkedAfter = await linkedSnapshotFiles(path.join(env.tmp, 'root'));
    expect(linkedAfter - linkedBefore).toBeGreaterThanOrEqual(2 * (FILES - 4));

    // The same image, byte for byte, as a builder that never ran this COPY.
    const fresh = await Builder.open({ root: path.join(env.tmp, 'fresh-root') });
    try {
      const alone = await build(fresh, path.join(env.tmp, 'out-fresh'));
      expect(alone.error).toBeUndefined();
      expect(second.result!.imageDigest).toBe(alone.result!.imageDigest);
    } finally {
      await fresh.close();
      await unmountAll(path.join(env.tmp, 'fresh-root'));
    }
    const out2 = path.join(env.tmp, 'out2');
    expect(await readFile(path.join(out2, 'tree/d3/f7'), 'utf8')).toBe('edited\n');
    expect(await readFile(path.join(out2, 'tree/d1/new'), 'utf8')).toBe('new file\n');
    await expect(lstat(path.join(out2, 'tree/d2/f6'))).rejects.toThrow();
    expect((await lstat(path.join(out2, 'tree/d0/f4'))).mode & 0o777).toBe(0o600);
    expect(await readFile(path.join(out2, 'seen.txt'), 'utf8')).toBe(`${'file 1\n'.repeat(2)}appended\n`);

    // Back to the first context: every step is cached and the image is the first one, unchanged.
    await writeFile(path.join(ctx, 'tree/d3/f7'), 'file 7\n'.repeat(8));
    await chmod(path.join(ctx, 'tree/d0/f4'), 0o644);
    await rm(path.join(ctx, 'tree/d1/new'));
    await writeFile(path.join(ctx, 'tree/d2/f6'), 'file 6\n'.repeat(7));
    await rm(path.join(ctx, 'tree/gone'), { recursive: true });
    const again = await build(env.builder, path.join(env.tmp, 'out3'));
    expect(again.error).toBeUndefined();
    expect(again.ran).toEqual([]);
    expect(again.result!.imageDigest).toBe(first.result!.imageDigest);
    // The first COPY's snapshot, under a new RUN: its files as they were copied, the edit and the append nowhere.
    const check = await build(env.builder, path.join(env.tmp, 'out4'), [`FROM ${env.base}`, 'COPY tree/ /tree/', 'RUN cat /tree/d1/f1 /tree/d3/f7 > /check.txt', ''].join('\n'));
    expect(check.error).toBeUndefined();
    expect(check.ran).toHaveLength(1);
    expect(await readFile(path.join(env.tmp, 'out4/check.txt'), 'utf8')).toBe(`${'file 1\n'.repeat(2)}${'file 7\n'.repeat(8)}`);
  });

  it('takes the whole layer when a changed parent leaves the copied tree the same, and not when one mode differs', async () => {
    const twoSteps = (n: string) => [`FROM ${env.base}`, `RUN echo ${n} > /n && touch -r /bin/busybox /n /`, 'COPY tree/ /tree/', ''].join('\n');
    /** The image a builder that never ran these steps makes of the context as it is now. */
    const alone = async (n: string) => {
      const fresh = await Builder.open({ root: path.join(env.tmp, `fresh-${n}`) });
      try {
        const r = await build(fresh, path.join(env.tmp, `pf-${n}`), twoSteps(n));
        expect(r.error).toBeUndefined();
        return r.result!.imageDigest;
      } finally {
        await fresh.close();
        await unmountAll(path.join(env.tmp, `fresh-${n}`));
      }
    };
    // A hardlink pair is written anew each time (never taken), so no tree with one is ever the same.
    await rm(path.join(ctx, 'tree/d2/f2-hard'));
    const one = await build(env.builder, path.join(env.tmp, 'p1'), twoSteps('one'));
    expect(one.error).toBeUndefined();
    const two = await build(env.builder, path.join(env.tmp, 'p2'), twoSteps('two'));
    expect(two.error).toBeUndefined();
    expect(two.ran.some((s) => s.includes('COPY tree/'))).toBe(true);
    expect(two.result!.imageDigest).toBe(await alone('two'));

    await chmod(path.join(ctx, 'tree/d1/f9'), 0o700);
    const three = await build(env.builder, path.join(env.tmp, 'p3'), twoSteps('three'));
    expect(three.error).toBeUndefined();
    expect((await lstat(path.join(env.tmp, 'p3/tree/d1/f9'))).mode & 0o777).toBe(0o700);
    expect(three.result!.imageDigest).toBe(await alone('three'));
  });
});

describe('COPY of single files into a directory of a lower layer, rerun on a new parent', () => {
  let env: BuilderEnv;
  let ctx: string;
  beforeAll(async () => {
    env = await startBuilderEnv('copy-reuse-files');
    ctx = path.join(env.tmp, 'ctx');
    await writeTree(ctx, { 'd/a.txt': 'a\n', 'b.txt': 'b\n', 'c.txt': 'c\n' });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('writes them (their directory is not in the upper dir), and gives the image a builder without donors gives', async () => {
    // SOURCE_DATE_EPOCH in the past: /app's time is that of the copy (the build's), clamped alike in both builders.
    const text = (n: string) => [`FROM ${env.base}`, `RUN echo ${n} > /n && touch -r /bin/busybox /n /`, 'COPY d/ /app/', 'COPY b.txt c.txt /app/', ''].join('\n');
    const run = (b: Builder, n: string) => drive(b, { dockerfile: text(n), context: { dir: ctx }, sourceDateEpoch: 1_700_000_000 });
    expect((await run(env.builder, 'one')).error).toBeUndefined();
    const two = await run(env.builder, 'two');
    expect(two.error).toBeUndefined();
    expect(two.ran.filter((s) => s.includes('COPY'))).toHaveLength(2);
    const fresh = await Builder.open({ root: path.join(env.tmp, 'fresh') });
    try {
      const alone = await run(fresh, 'two');
      expect(alone.error).toBeUndefined();
      expect(two.result!.imageDigest).toBe(alone.result!.imageDigest);
    } finally {
      await fresh.close();
      await unmountAll(path.join(env.tmp, 'fresh'));
    }
  });
});

describe('sameTree', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-sametree-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A donor tree and a copy of it whose files are hard links to the donor's, dirs and links made anew with equal times. */
  async function pair(name: string): Promise<{ a: string; b: string }> {
    const a = path.join(dir, `${name}-a`);
    const b = path.join(dir, `${name}-b`);
    await mkdir(path.join(a, 'sub'), { recursive: true });
    await writeFile(path.join(a, 'sub/f'), 'x');
    await symlink('sub/f', path.join(a, 'l'));
    await mkdir(path.join(b, 'sub'), { recursive: true });
    await link(path.join(a, 'sub/f'), path.join(b, 'sub/f'));
    await symlink('sub/f', path.join(b, 'l'));
    const t = new Date('2024-01-02T03:04:05.678Z');
    for (const root of [a, b]) {
      await lutimes(path.join(root, 'l'), t, t);
      await utimes(path.join(root, 'sub'), t, t);
    }
    return { a, b };
  }

  it('holds for equal trees whose files are one inode', async () => {
    const { a, b } = await pair('same');
    expect(sameTree(a, b)).toBe(true);
  });

  it('fails for an equal file that is not the same inode, a mode, a dir time, a link target, an extra name', async () => {
    const copy = await pair('copy');
    await rm(path.join(copy.b, 'sub/f'));
    await writeFile(path.join(copy.b, 'sub/f'), 'x');
    const t = (await lstat(path.join(copy.a, 'sub'))).mtime;
    await utimes(path.join(copy.b, 'sub'), t, t);
    expect(sameTree(copy.a, copy.b)).toBe(false);

    const mode = await pair('mode');
    await chmod(path.join(mode.b, 'sub'), 0o700);
    expect(sameTree(mode.a, mode.b)).toBe(false);

    const time = await pair('time');
    await utimes(path.join(time.b, 'sub'), new Date(0), new Date(0));
    expect(sameTree(time.a, time.b)).toBe(false);

    const target = await pair('target');
    await rm(path.join(target.b, 'l'));
    await symlink('elsewhere', path.join(target.b, 'l'));
    const lt = (await lstat(path.join(target.a, 'l'))).mtime;
    await lutimes(path.join(target.b, 'l'), lt, lt);
    expect(sameTree(target.a, target.b)).toBe(false);

    const extra = await pair('extra');
    await writeFile(path.join(extra.b, 'more'), '');
    expect(sameTree(extra.a, extra.b)).toBe(false);
  });
});


describe('FileReuse.offer', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-offer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A source file and a donor file at `rel` with these bytes, the donor with the metadata the copy would give. */
  async function offerOf(rel: string, srcBytes: Buffer, donorBytes: Buffer, statSize = srcBytes.length): Promise<boolean> {
    const src = path.join(dir, 'src', rel);
    const donor = path.join(dir, 'donor', rel);
    for (const f of [src, donor]) await mkdir(path.dirname(f), { recursive: true });
    await writeFile(src, srcBytes);
    await writeFile(donor, donorBytes);
    const mtime = new Date('2024-01-02T03:04:05.678Z');
    await utimes(donor, mtime, mtime);
    const d = await lstat(donor);
    const st = { ...(await lstat(src)), size: statSize, isFile: () => true } as unknown as Stats;
    const reuse = new FileReuse(path.join(dir, 'root'), path.join(dir, 'donor'));
    return reuse.offer(src, st, path.join(dir, 'root', rel), { uid: d.uid, gid: d.gid, mode: d.mode & 0o7777, atime: mtime, mtime });
  }

  it('takes a file whose bytes are the donor’s, at every size around the read chunk', async () => {
    for (const size of [0, 1, 4095, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 600_000]) {
      const bytes = randomBytes(size);
      expect(await offerOf(`same-${size}`, bytes, Buffer.from(bytes)), `size ${size}`).toBe(true);
    }
  });

  it('refuses one byte changed (first, last, across a chunk), and a file longer than its stat said', async () => {
    for (const [size, at] of [[1, 0], [4096, 4095], [256 * 1024 + 10, 256 * 1024 - 1], [256 * 1024 + 10, 256 * 1024], [600_000, 599_999]] as const) {
      const bytes = randomBytes(size);
      const other = Buffer.from(bytes);
      other[at] = other[at]! ^ 0xff;
      expect(await offerOf(`changed-${size}-${at}`, bytes, other), `size ${size} byte ${at}`).toBe(false);
    }
    // The source grew after its stat (and the donor holds the stat's bytes): not the same file.
    for (const size of [0, 100, 256 * 1024 - 1]) {
      const bytes = randomBytes(size + 1);
      expect(await offerOf(`grew-${size}`, bytes, bytes.subarray(0, size), size), `grew past ${size}`).toBe(false);
    }
  });
});
