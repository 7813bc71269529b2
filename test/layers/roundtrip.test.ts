import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, chown, link, mkdir, mkdtemp, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest } from '../../core/digest.js';
import type { Mount } from '../../core/mount.js';
import { mountAt, mountsUnder, unmountAt } from '../../core/mounter.js';
import { MediaType } from '../../core/oci.js';
import { DigestMismatchError } from '../../core/streams.js';
import { applyLayer, chainId, readTar, writeLayer, type LayerDescriptor } from '../../builder/layers/index.js';
import { OverlaySnapshotter } from '../../builder/snapshot/index.js';
import { DirIngester } from './dir-ingester.js';
import { describeTree } from './tree.js';

let tmp: string;
let snap: OverlaySnapshotter;
let ingester: DirIngester;
const mounted: string[] = [];
let n = 0;

async function mount(mounts: Mount[]): Promise<string> {
  const target = path.join(tmp, `mnt-${n++}`);
  await mkdir(target);
  await mountAt(mounts[0]!, target);
  mounted.push(target);
  return target;
}

async function unmount(target: string): Promise<void> {
  await unmountAt(target);
  mounted.splice(mounted.indexOf(target), 1);
}

/** The lower layer every test changes. */
async function makeBase(): Promise<void> {
  const dir = await mount(await snap.prepare('base-key', null));
  await writeFile(path.join(dir, 'a.txt'), 'old a');
  await writeFile(path.join(dir, 'del.txt'), 'to delete');
  await mkdir(path.join(dir, 'opq/sub'), { recursive: true });
  await writeFile(path.join(dir, 'opq/old1'), '1');
  await writeFile(path.join(dir, 'opq/sub/old2'), '2');
  await mkdir(path.join(dir, 'keep'));
  await writeFile(path.join(dir, 'keep/z'), 'z');
  await unmount(dir);
  await snap.commit('base', 'base-key');
}

const LONG = `long/${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(40)}.txt`;

/** Every kind of change a RUN step makes, through the overlay mount. */
async function makeChanges(dir: string): Promise<void> {
  await writeFile(path.join(dir, 'new.txt'), 'new');
  await chown(path.join(dir, 'new.txt'), 1000, 1000);
  await chmod(path.join(dir, 'new.txt'), 0o640);
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', path.join(dir, 'new.txt')]);
  await writeFile(path.join(dir, 'a.txt'), 'new a');
  await rm(path.join(dir, 'del.txt'));
  await rm(path.join(dir, 'opq'), { recursive: true });
  await mkdir(path.join(dir, 'opq'));
  await writeFile(path.join(dir, 'opq/fresh'), 'fresh');
  await mkdir(path.join(dir, 'links'));
  await writeFile(path.join(dir, 'links/h1'), 'linked');
  await link(path.join(dir, 'links/h1'), path.join(dir, 'links/h2'));
  await symlink('/etc/passwd', path.join(dir, 'abs-link'));
  await symlink('../a.txt', path.join(dir, 'links/rel-link'));
  await writeFile(path.join(dir, 'suid'), '#!/bin/sh\n');
  await chmod(path.join(dir, 'suid'), 0o4755);
  await writeFile(path.join(dir, 'capbin'), 'binary');
  await chmod(path.join(dir, 'capbin'), 0o755);
  execFileSync('setcap', ['cap_net_raw,cap_setuid+ep', path.join(dir, 'capbin')]);
  await mkdir(path.dirname(path.join(dir, LONG)), { recursive: true });
  await writeFile(path.join(dir, LONG), 'long name');
  await writeFile(path.join(dir, 'été.txt'), 'utf8 name');
  // A socket left by a step is not archivable and must be skipped.
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(path.join(dir, 'sock'), resolve));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  execFileSync('mknod', [path.join(dir, 'sock-check'), 'p']);
  await rm(path.join(dir, 'sock-check'));
  const fixed = new Date('2020-01-02T03:04:05Z');
  await utimes(path.join(dir, 'keep/z'), fixed, fixed); // copy-up of a lower file, metadata only
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'layers-rt-'));
  snap = new OverlaySnapshotter(path.join(tmp, 'state'));
  ingester = new DirIngester(path.join(tmp, 'content'));
  await makeBase();
});

afterAll(async () => {
  for (const m of mounted.reverse()) await unmountAt(m);
  await snap.flush();
  const left = await mountsUnder(tmp);
  await rm(tmp, { recursive: true, force: true });
  expect(left).toEqual([]);
});

describe('diff and apply through real overlay mounts', () => {
  let desc: LayerDescriptor;
  let changed: string;
  let stepMounts: Mount[];

  beforeAll(async () => {
    stepMounts = await snap.prepare('step', 'base');
    changed = await mount(stepMounts);
    await makeChanges(changed);
    const d = await writeLayer(stepMounts, ingester);
    expect(d).not.toBeNull();
    desc = d!;
  });

  it('writes an OCI gzip layer whose digest, size and diff id match the bytes', async () => {
    expect(desc.mediaType).toBe(MediaType.OciLayerGzip);
    const blob = await readFile(ingester.path(desc.digest));
    expect(blob.length).toBe(desc.size);
    expect(`sha256:${createHash('sha256').update(blob).digest('hex')}`).toBe(desc.digest);
    // gzip header: no FNAME/FCOMMENT flags, mtime 0.
    expect(blob[3]! & 0x18).toBe(0);
    expect(blob.readUInt32LE(4)).toBe(0);
    const tarHash = createHash('sha256');
    for await (const c of createReadStream(ingester.path(desc.digest)).pipe(createGunzip())) tarHash.update(c as Buffer);
    expect(`sha256:${tarHash.digest('hex')}`).toBe(desc.diffId);
  });

  it('turns whiteouts and opaque dirs into .wh. entries, keeps hardlinks, skips sockets, sorted', async () => {
    const entries: Array<{ name: string; type: string; linkname: string; mode: number; xattrs: string[] }> = [];
    for await (const e of readTar(createReadStream(ingester.path(desc.digest)).pipe(createGunzip()))) {
      entries.push({ name: e.name, type: e.type, linkname: e.linkname, mode: e.mode, xattrs: [...e.xattrs.keys()] });
    }
    const names = entries.map((e) => e.name);
    expect(names).toContain('.wh.del.txt');
    expect(names).toContain('opq/');
    expect(names).toContain('opq/.wh..wh..opq');
    expect(names).toContain('opq/fresh');
    expect(names).not.toContain('opq/old1');
    expect(names).not.toContain('sock');
    expect(names).toContain(LONG);
    expect(names).toContain('été.txt');
    expect(entries.find((e) => e.name === 'links/h2')).toMatchObject({ type: 'hardlink', linkname: 'links/h1' });
    expect(entries.find((e) => e.name === 'abs-link')).toMatchObject({ type: 'symlink', linkname: '/etc/passwd' });
    expect(entries.find((e) => e.name === 'suid')!.mode).toBe(0o4755);
    expect(entries.find((e) => e.name === 'capbin')!.xattrs).toEqual(['security.capability']);
    expect(entries.find((e) => e.name === 'new.txt')!.xattrs).toEqual(['user.note']);
    expect(entries.some((e) => e.xattrs.some((x) => x.startsWith('trusted.')))).toBe(false);
    // Parents precede children, and siblings are in byte order.
    for (const [i, e] of entries.entries()) {
      const parent = e.name.replace(/\/?[^/]+\/?$/, '');
      if (parent) expect(names.slice(0, i)).toContain(`${parent}/`);
    }
  });

  it('is readable by GNU tar with the same listing', () => {
    const listing = execFileSync('tar', ['-tvzf', ingester.path(desc.digest)], { encoding: 'utf8' });
    expect(listing).toMatch(/^-rw-r----- 1000\/1000 .* new\.txt$/m);
    expect(listing).toMatch(/^hrw-r--r-- .* links\/h2 link to links\/h1$/m);
    expect(listing).toMatch(/^lrwxrwxrwx .* abs-link -> \/etc\/passwd$/m);
    expect(listing).toMatch(/^-rwsr-xr-x .* suid$/m);
    expect(listing).toContain(LONG);
    expect(listing).toMatch(/opq\/\.wh\.\.wh\.\.opq$/m);
  });

  it('applies onto a fresh snapshot of the same parent and gives the same tree', async () => {
    const target = await mount(await snap.prepare('applied', 'base'));
    const res = await applyLayer(createReadStream(ingester.path(desc.digest)), desc.mediaType, target, {
      expectedDiffId: desc.diffId,
    });
    expect(res.diffId).toBe(desc.diffId);
    const want = await describeTree(changed);
    const got = await describeTree(target);
    expect(got).toEqual(want);
    expect(got['capbin']).toMatch(/security\.capability=0x/);
    expect(got['opq/fresh']).toBeDefined();
    expect(got['opq/old1']).toBeUndefined();
    expect(got['opq/sub']).toBeUndefined();
    expect(got['del.txt']).toBeUndefined();
    expect(got['links/h2']).toMatch(/same-as=links\/h1/);
    expect(got['keep/z']).toContain(`mtime=${Date.parse('2020-01-02T03:04:05Z') / 1000}`);
    expect(got['new.txt']).toMatch(/mode=640 uid=1000 gid=1000 .*user\.note=0x68656c6c6f/);
    expect(got['suid']).toMatch(/^file mode=4755 /);
    expect(got['abs-link']).toMatch(/-> \/etc\/passwd$/);
    expect(Object.keys(got).length).toBeGreaterThan(15);
    expect(execFileSync('getcap', [path.join(target, 'capbin')], { encoding: 'utf8' })).toMatch(/cap_setuid,cap_net_raw[=+]ep/);
    await unmount(target);
    await snap.remove('applied');
  });

  it('fails with DigestMismatchError when the diff id differs', async () => {
    const target = await mount(await snap.prepare('bad-diffid', 'base'));
    const wrong = parseDigest(`sha256:${'0'.repeat(64)}`);
    await expect(
      applyLayer(createReadStream(ingester.path(desc.digest)), desc.mediaType, target, { expectedDiffId: wrong }),
    ).rejects.toBeInstanceOf(DigestMismatchError);
    await unmount(target);
    await snap.remove('bad-diffid');
  });

  it('applies the same changes from a zstd layer (zstd -dc) to the same tree and diff id', async () => {
    // The same tar, recompressed by the zstd tool: what buildx --output compression=zstd pushes.
    const zst = path.join(tmp, 'layer.tar.zst');
    execFileSync('sh', ['-c', 'gzip -dc "$1" | zstd -q -19 -o "$2"', 'sh', ingester.path(desc.digest), zst]);
    const target = await mount(await snap.prepare('applied-zstd', 'base'));
    const res = await applyLayer(createReadStream(zst), MediaType.OciLayerZstd, target, { expectedDiffId: desc.diffId });
    expect(res.diffId).toBe(desc.diffId);
    expect(await describeTree(target)).toEqual(await describeTree(changed));
    await unmount(target);
    await snap.remove('applied-zstd');
    // A corrupt zstd stream is an error, not a partial tree passed off as the layer.
    const bad = path.join(tmp, 'bad.tar.zst');
    await writeFile(bad, Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(4096, 7)]));
    await expect(applyLayer(createReadStream(bad), MediaType.OciLayerZstd, tmp)).rejects.toThrow(/zstd/);
  });

  it('is deterministic: the same changes diffed twice give the same digest', async () => {
    const again = await writeLayer(stepMounts, ingester);
    expect(again).toEqual(desc);
  });

  it('clamps mtimes to SOURCE_DATE_EPOCH so identical changes made at different times match', async () => {
    const epoch = 1_000_000_000;
    const results: LayerDescriptor[] = [];
    for (const key of ['sde-1', 'sde-2']) {
      const mounts = await snap.prepare(key, 'base');
      const dir = await mount(mounts);
      await writeFile(path.join(dir, 'x'), 'same');
      await mkdir(path.join(dir, 'd'));
      await rm(path.join(dir, 'del.txt'));
      results.push((await writeLayer(mounts, ingester, { sourceDateEpoch: epoch }))!);
      await unmount(dir);
      await new Promise((r) => setTimeout(r, 1100)); // a different wall-clock second for the second run
    }
    expect(results[0]!.digest).toBe(results[1]!.digest);
    for await (const e of readTar(createReadStream(ingester.path(results[0]!.digest)).pipe(createGunzip()))) {
      expect(e.mtime).toBe(epoch);
    }
  });

  it('returns null for a snapshot without changes', async () => {
    const mounts = await snap.prepare('empty', 'base');
    expect(await writeLayer(mounts, ingester)).toBeNull();
    await snap.remove('empty');
  });

  it('computes OCI chain ids', () => {
    const a = parseDigest(`sha256:${'a'.repeat(64)}`);
    const b = parseDigest(`sha256:${'b'.repeat(64)}`);
    expect(chainId([a])).toBe(a);
    const ab = `sha256:${createHash('sha256').update(`${a} ${b}`).digest('hex')}`;
    expect(chainId([a, b])).toBe(ab);
    expect(() => chainId([])).toThrow();
  });
});

describe('writeLayer failure handling', () => {
  it('aborts the ingest when cancelled, leaving no blob and no partial ingest', async () => {
    const mounts = await snap.prepare('cancelled', 'base');
    const dir = await mount(mounts);
    await writeFile(path.join(dir, 'big'), Buffer.alloc(4 * 1024 * 1024, 1));
    const store = new DirIngester(path.join(tmp, 'content-cancel'));
    const ac = new AbortController();
    const p = writeLayer(mounts, store, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toThrow();
    expect(await readdir(path.join(tmp, 'content-cancel', 'ingest')).catch(() => [])).toEqual([]);
    expect(await readdir(path.join(tmp, 'content-cancel', 'blobs')).catch(() => [])).toEqual([]);
    await unmount(dir);
    await snap.remove('cancelled');
  });
});
