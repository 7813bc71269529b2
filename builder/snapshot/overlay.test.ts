import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { mountAt, mountsUnder, unmountAt } from '../../core/mounter.js';
import { readTreeXattrs, readUpperXattrs, upperDirOf } from '../layers/index.js';
import { fileAttrs, takesTopdir } from '../../test/helpers/file-attrs.js';
import { describeSnapshotter } from '../../test/suites/snapshotter.suite.js';
import { OverlaySnapshotter, SnapshotChainTooLongError } from './index.js';

const sh = promisify(execFile);

describeSnapshotter('overlay', async (root) => {
  const snapshotter = new OverlaySnapshotter(root);
  return { snapshotter, root, sweep: () => snapshotter.sweep() };
});

describe('OverlaySnapshotter specifics', () => {
  const tmp = mkdtemp(path.join(os.tmpdir(), 'overlay-snap-'));
  const made: OverlaySnapshotter[] = [];
  const track = (s: OverlaySnapshotter): OverlaySnapshotter => (made.push(s), s);
  afterAll(async () => {
    // Their background syncs write into the roots: done before the roots go.
    await Promise.all(made.map((s) => s.flush()));
    const dir = await tmp;
    expect(await mountsUnder(dir)).toEqual([]);
    await rm(dir, { recursive: true, force: true });
  });

  it('answers stat from the records alone: on a root it never set up, it makes nothing', async () => {
    const root = path.join(await tmp, 'untouched');
    const snap = track(new OverlaySnapshotter(root));
    expect(await snap.stat('anything')).toBeUndefined();
    await expect(readdir(root)).rejects.toMatchObject({ code: 'ENOENT' });
    // Set up by a write, it then finds what the write recorded.
    await snap.commit('done', (await snap.prepare('k', null), 'k'));
    expect(await track(new OverlaySnapshotter(root)).stat('done')).toMatchObject({ name: 'done', kind: 'committed', parent: null });
  });

  it('returns a bind mount for a parentless snapshot and an overlay with lowers in top-first order', async () => {
    const snap = track(new OverlaySnapshotter(path.join(await tmp, 'a')));
    const base = await snap.prepare('k0', null);
    expect(base).toEqual([{ type: 'bind', source: expect.stringMatching(/\/fs$/), options: ['rbind', 'rw'] }]);
    await snap.commit('l0', 'k0');
    await snap.commit('l1', (await snap.prepare('k1', 'l0'), 'k1'));
    const [m] = await snap.prepare('k2', 'l1');
    expect(m!.type).toBe('overlay');
    const lower = m!.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':');
    expect(lower).toHaveLength(2);
    const [v] = await snap.view('l1');
    expect(v!.options).toContain('ro');
    expect(v!.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':')).toEqual(lower);
    expect(m!.options.some((o) => o.startsWith('upperdir='))).toBe(true);
  });

  it.runIf(takesTopdir())('spreads snapshot dirs over ext4 block groups: TOPDIR on their parent, not on a snapshot', async () => {
    const root = path.join(await tmp, 'spread');
    const snap = track(new OverlaySnapshotter(root));
    const [m] = await snap.prepare('k0', null);
    expect(fileAttrs(path.join(root, 'snapshots'))).toContain('T');
    expect(fileAttrs(path.dirname(m!.source))).not.toContain('T');
    await snap.remove('k0');
  });

  it('rootless: every overlay mount carries userxattr, and the diff reads the opaque marks it writes', async () => {
    const snap = track(new OverlaySnapshotter(path.join(await tmp, 'rootless'), { rootless: true }));
    const [base] = await snap.prepare('k0', null);
    await mkdir(path.join(base!.source, 'd'));
    await writeFile(path.join(base!.source, 'd', 'old'), 'x');
    await snap.commit('l0', 'k0');
    const mounts = await snap.prepare('k1', 'l0');
    expect(mounts[0]!.options[0]).toBe('userxattr');
    expect((await snap.view('l0'))[0]!.type).toBe('bind');
    // A real mount: replace d, which overlay marks opaque in the user. namespace under userxattr.
    const dir = path.join(await tmp, 'rootless-mnt');
    await mkdir(dir);
    await mountAt(mounts[0]!, dir);
    try {
      await rm(path.join(dir, 'd'), { recursive: true });
      await mkdir(path.join(dir, 'd'));
    } finally {
      await unmountAt(dir);
    }
    const upper = upperDirOf(mounts);
    expect((await readUpperXattrs(mounts)).opaque).toEqual(new Set([path.join(upper, 'd')]));
    // Read as root's mounts are, the mark is not overlay's: nothing is opaque.
    expect((await readTreeXattrs(upper)).opaque.size).toBe(0);
    await snap.remove('k1');
  });

  it('a root made rootless is refused by a builder running as root (and the other way), before any mount', async () => {
    const root = path.join(await tmp, 'mixed');
    await track(new OverlaySnapshotter(root, { rootless: true })).prepare('k', null);
    await expect(track(new OverlaySnapshotter(root, { rootless: false })).prepare('k2', null)).rejects.toThrow(
      /made by a rootless builder \(overlay user\.\* xattrs\) and this one runs as root: use another state root/,
    );
    const other = path.join(await tmp, 'mixed2');
    await track(new OverlaySnapshotter(other, { rootless: false })).prepare('k', null);
    await expect(track(new OverlaySnapshotter(other, { rootless: true })).prepare('k2', null)).rejects.toThrow(/made by a builder running as root/);
  });

  it('rootless: a state root where overlay cannot be mounted is one clear error at start, and the probe leaves nothing', async () => {
    const good = path.join(await tmp, 'probe-ok');
    await track(new OverlaySnapshotter(good, { rootless: true })).prepare('k', null);
    expect((await readdir(good)).filter((n) => n.startsWith('probe-'))).toEqual([]);
    // A root inside an overlay mount: overlay refuses an overlayfs upper dir, as an old kernel refuses a user namespace.
    const base = path.join(await tmp, 'ovl');
    for (const d of ['l', 'u', 'w', 'm']) await mkdir(path.join(base, d), { recursive: true });
    await mountAt({ type: 'overlay', source: 'overlay', options: [`lowerdir=${base}/l`, `upperdir=${base}/u`, `workdir=${base}/w`] }, path.join(base, 'm'));
    try {
      const root = path.join(base, 'm', 'state');
      await expect(track(new OverlaySnapshotter(root, { rootless: true })).prepare('k', null)).rejects.toThrow(
        new RegExp(`^rootless: overlayfs cannot be mounted in this user namespace with its upper dir under ${root} \\(mount overlay .*\\): rootless buildlite needs Linux 5\\.11`),
      );
      expect(await mountsUnder(root)).toEqual([]);
      expect((await readdir(root)).filter((n) => n.startsWith('probe-'))).toEqual([]);
    } finally {
      await unmountAt(path.join(base, 'm'));
    }
  });

  it('fails with a clear error when a chain no longer fits in the mount options', async () => {
    // A long root makes every lowerdir long, so the page limit is reached early.
    const longRoot = path.join(await tmp, 'x'.repeat(200), 'y'.repeat(200), 'z'.repeat(200));
    const snap = track(new OverlaySnapshotter(longRoot));
    let parent: string | null = null;
    let error: unknown;
    for (let i = 0; i < 10 && !error; i++) {
      try {
        await snap.prepare(`k${i}`, parent);
        await snap.commit(`n${i}`, `k${i}`);
        parent = `n${i}`;
      } catch (err) {
        error = err;
      }
    }
    expect(error).toBeInstanceOf(SnapshotChainTooLongError);
    expect((error as Error).message).toMatch(/4095/);
  });

  it('mounts active snapshots volatile as root (the kernel takes it), never rootless', async () => {
    const root = path.join(await tmp, 'volatile');
    const snap = track(new OverlaySnapshotter(root, { rootless: false }));
    await snap.prepare('k0', null);
    await snap.commit('l0', 'k0');
    const mounts = await snap.prepare('k1', 'l0');
    expect(mounts[0]!.options).toContain('volatile');
    const dir = path.join(await tmp, 'volatile-mnt');
    await mkdir(dir);
    await mountAt(mounts[0]!, dir);
    try {
      await writeFile(path.join(dir, 'f'), 'written');
    } finally {
      await unmountAt(dir);
    }
    await snap.commit('l1', 'k1');
    expect(await readFile(path.join((await snap.ownDir('l1'))!, 'f'), 'utf8')).toBe('written');
    const rootless = track(new OverlaySnapshotter(path.join(await tmp, 'volatile-rootless'), { rootless: true }));
    await rootless.prepare('k0', null);
    await rootless.commit('l0', 'k0');
    expect((await rootless.prepare('k1', 'l0'))[0]!.options).not.toContain('volatile');
  });

  it('after a reboot, the sweep drops the snapshots no sync covered and those above them, and keeps the rest', async () => {
    const root = path.join(await tmp, 'boots');
    const [bootA, bootB] = ['11111111-2222-3333-4444-555555555555', '66666666-7777-8888-9999-000000000000'];
    const before = track(new OverlaySnapshotter(root, { bootId: bootA }));
    await before.prepare('k0', null);
    await before.commit('s0', 'k0');
    await before.flush();
    const marks = path.join(root, 'synced.json');
    const coveredS0 = await readFile(marks, 'utf8');
    expect(JSON.parse(coveredS0)).toHaveProperty(bootA);
    await before.commit('s1', (await before.prepare('k1', 's0'), 'k1'));
    await before.commit('s2', (await before.prepare('k2', 's1'), 'k2'));
    await before.commit('t1', (await before.prepare('k3', 's0'), 'k3'));
    await before.flush();
    // The crash: the syncs after s0 never finished (their mark is not on disk).
    await writeFile(marks, coveredS0);
    // A record written before this rule (no `unsynced`): kept, as it always was.
    const legacyDir = (await before.ownDir('t1'))!;
    const t1File = path.join(root, 'records', `${createHash('sha256').update('t1').digest('hex')}.json`);
    const { unsynced, ...legacy } = JSON.parse(await readFile(t1File, 'utf8')) as Record<string, unknown>;
    expect(unsynced).toMatchObject({ boot: bootA });
    await writeFile(t1File, JSON.stringify(legacy));
    const s1Dir = (await before.ownDir('s1'))!;

    const after = track(new OverlaySnapshotter(root, { bootId: bootB }));
    const res = await after.sweep();
    expect(res.lost.sort()).toEqual(['s1', 's2']);
    expect(await after.stat('s1')).toBeUndefined();
    expect(await after.stat('s2')).toBeUndefined();
    expect(await after.stat('s0')).toMatchObject({ kind: 'committed' });
    expect(await after.stat('t1')).toMatchObject({ kind: 'committed', parent: 's0' });
    expect(await after.ownDir('t1')).toBe(legacyDir);
    await expect(readdir(path.dirname(s1Dir))).rejects.toThrow(/ENOENT/);
    // What this boot commits stays, synced or not, and a second sweep finds nothing more.
    await after.commit('s1', (await after.prepare('k4', 's0'), 'k4'));
    expect((await after.sweep()).lost).toEqual([]);
    expect(await after.stat('s1')).toMatchObject({ kind: 'committed' });
    await after.flush();
  });

  it('sweep drops half-created dirs and recovers a commit interrupted between its two records', async () => {
    const root = path.join(await tmp, 'c');
    const snap = track(new OverlaySnapshotter(root));
    await snap.prepare('k', null);
    await snap.commit('n', 'k');
    // Simulate a crash: a stray snapshot dir without a record, and a temp record file.
    await mkdir(path.join(root, 'snapshots', 'zzzzzzzz', 'fs'), { recursive: true });
    await writeFile(path.join(root, 'records', '.tmp-dead'), '{');
    const res = await snap.sweep();
    expect(res.removed).toEqual([]);
    expect(await readdir(path.join(root, 'snapshots'))).toHaveLength(1);
    expect((await readdir(path.join(root, 'records'))).filter((f) => f.startsWith('.tmp'))).toEqual([]);
    expect(await snap.stat('n')).toMatchObject({ kind: 'committed' });
  });

  it('a parent stays while another process has a snapshot on it, though this one listed the records before', async () => {
    const root = path.join(await tmp, 'parent-elsewhere');
    const here = track(new OverlaySnapshotter(root));
    const there = track(new OverlaySnapshotter(root));
    await here.commit('p', (await here.prepare('k0', null), 'k0'));
    await here.commit('x', (await here.prepare('k1', null), 'k1'));
    await here.remove('x');
    await there.prepare('child', 'p');
    await expect(here.remove('p')).rejects.toThrow(/is the parent of "child"/);
    await there.remove('child');
    await here.remove('p');
    expect(await readdir(path.join(root, 'snapshots'))).toEqual([]);
  });

  it("measures a committed snapshot's disk use once and keeps it; an active one each time", async () => {
    const root = path.join(await tmp, 'usage');
    const snap = track(new OverlaySnapshotter(root));
    const [m] = await snap.prepare('k', null);
    await writeFile(path.join(m!.source, 'a'), Buffer.alloc(64 * 1024, 1));
    const active = await snap.usage('k');
    await writeFile(path.join(m!.source, 'b'), Buffer.alloc(64 * 1024, 2));
    expect((await snap.usage('k')).inodes).toBe(active.inodes + 1);
    await snap.commit('n', 'k');
    const committed = await snap.usage('n');
    expect(committed.size).toBeGreaterThanOrEqual(128 * 1024);
    // Another process reads the kept figure: a file slipped under the snapshot (nothing writes there) is not walked.
    await writeFile(path.join((await snap.ownDir('n'))!, 'c'), Buffer.alloc(64 * 1024, 3));
    expect(await track(new OverlaySnapshotter(root)).usage('n')).toEqual(committed);
  });

  it("drops a step's active snapshot without reading the other records", async () => {
    const root = path.join(await tmp, 'drop-active');
    const snap = track(new OverlaySnapshotter(root));
    await snap.commit('l0', (await snap.prepare('k0', null), 'k0'));
    await snap.prepare('k1', 'l0');
    // A record no parser accepts: anything that read every record would fail on it.
    await writeFile(path.join(root, 'records', `${'f'.repeat(64)}.json`), '{');
    await snap.remove('k1');
    expect(await snap.stat('k1')).toBeUndefined();
    expect(await readdir(path.join(root, 'snapshots'))).toHaveLength(1);
    await rm(path.join(root, 'records', `${'f'.repeat(64)}.json`));
  });

  it('a commit whose active record could not be dropped keeps its directory when the key is removed', async () => {
    const root = path.join(await tmp, 'half-commit');
    const snap = track(new OverlaySnapshotter(root));
    const [m] = await snap.prepare('k', null);
    await writeFile(path.join(m!.source, 'kept'), 'x');
    // The key's record is immutable: the commit makes its record, then fails to drop the key's.
    const keyRecord = path.join(root, 'records', `${createHash('sha256').update('k').digest('hex')}.json`);
    await sh('chattr', ['+i', keyRecord]);
    try {
      await expect(snap.commit('n', 'k')).rejects.toThrow();
    } finally {
      await sh('chattr', ['-i', keyRecord]);
    }
    expect(await snap.stat('n')).toMatchObject({ kind: 'committed' });
    await snap.remove('k');
    const dir = await snap.ownDir('n');
    expect(await readFile(path.join(dir!, 'kept'), 'utf8')).toBe('x');
  });
});
