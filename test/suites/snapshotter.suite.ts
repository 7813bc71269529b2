import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Mount } from '../../core/mount.js';
import { mountAt, mountsUnder, unmountAt } from '../../core/mounter.js';
import type { SnapshotInfo, Snapshotter } from '../../builder/snapshot/index.js';

export interface SnapshotterUnderTest {
  readonly snapshotter: Snapshotter;
  /** Crash recovery, when the implementation has it. */
  readonly sweep?: () => Promise<unknown>;
  /** Where the implementation keeps its state (checked for mounts and mode). */
  readonly root: string;
}

/**
 * Behaviour every Snapshotter must show, with real mounts: files written
 * through a prepared snapshot's mount are seen through children and views,
 * committed snapshots are read-only, parents are protected, usage counts only
 * a snapshot's own layer, and a sweep removes what a crashed process left.
 */
export function describeSnapshotter(name: string, factory: (root: string) => Promise<SnapshotterUnderTest>): void {
  describe(`Snapshotter behaviour: ${name}`, () => {
    let tmp: string;
    let sut: SnapshotterUnderTest;
    let mounted: string[] = [];
    let counter = 0;

    const tempRoot = mkdtemp(path.join(os.tmpdir(), 'snapsuite-'));

    beforeEach(async () => {
      tmp = await mkdtemp(path.join(await tempRoot, 'case-'));
      sut = await factory(path.join(tmp, 'state'));
      mounted = [];
    });

    afterEach(async () => {
      for (const m of mounted.reverse()) await unmountAt(m);
      // As a process does before it lets go of a root: what it committed is synced first.
      await sut.snapshotter.flush?.();
      await rm(tmp, { recursive: true, force: true });
    });

    afterAll(async () => {
      const root = await tempRoot;
      const left = await mountsUnder(root);
      for (const m of left) await unmountAt(m);
      await rm(root, { recursive: true, force: true });
      expect(left).toEqual([]);
    });

    async function mount(mounts: Mount[]): Promise<string> {
      expect(mounts).toHaveLength(1);
      const target = path.join(tmp, `mnt-${counter++}`);
      await mkdir(target);
      await mountAt(mounts[0]!, target);
      mounted.push(target);
      return target;
    }

    async function unmount(target: string): Promise<void> {
      await unmountAt(target);
      mounted = mounted.filter((m) => m !== target);
    }

    /** prepare → write files → commit, as a build step does. */
    async function layer(key: string, parent: string | null, files: Record<string, string>, name: string) {
      const dir = await mount(await sut.snapshotter.prepare(key, parent));
      for (const [f, content] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
        await writeFile(path.join(dir, f), content);
      }
      await unmount(dir);
      await sut.snapshotter.commit(name, key);
    }

    async function collect(): Promise<SnapshotInfo[]> {
      const out: SnapshotInfo[] = [];
      for await (const s of sut.snapshotter.list()) out.push(s);
      return out.sort((a, b) => a.name.localeCompare(b.name));
    }

    it('keeps its state private (mode 0700)', async () => {
      await sut.snapshotter.prepare('k', null);
      expect((await stat(sut.root)).mode & 0o777).toBe(0o700);
    });

    it('prepares a writable base, commits it, and shows it through a view', async () => {
      await layer('k1', null, { 'etc/hello': 'hi' }, 'base');
      expect(await sut.snapshotter.stat('k1')).toBeUndefined();
      const info = await sut.snapshotter.stat('base');
      expect(info).toMatchObject({ name: 'base', parent: null, kind: 'committed' });
      const view = await mount(await sut.snapshotter.view('base'));
      expect(await readFile(path.join(view, 'etc/hello'), 'utf8')).toBe('hi');
      await expect(writeFile(path.join(view, 'new'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    });

    it('stacks children on parents, and a child change never reaches the parent', async () => {
      await layer('k1', null, { a: '1', b: 'lower' }, 'l1');
      await layer('k2', 'l1', { b: 'upper', c: '3' }, 'l2');
      const dir = await mount(await sut.snapshotter.prepare('k3', 'l2'));
      expect(await readFile(path.join(dir, 'a'), 'utf8')).toBe('1');
      expect(await readFile(path.join(dir, 'b'), 'utf8')).toBe('upper');
      await rm(path.join(dir, 'a'));
      expect((await readdir(dir)).sort()).toEqual(['b', 'c']);
      const lower = await mount(await sut.snapshotter.view('l1'));
      expect((await readdir(lower)).sort()).toEqual(['a', 'b']);
      expect(await readFile(path.join(lower, 'b'), 'utf8')).toBe('lower');
      expect(await sut.snapshotter.stat('k3')).toMatchObject({ kind: 'active', parent: 'l2' });
      // mounts() of an active snapshot gives the same layering again.
      const again = await mount(await sut.snapshotter.mounts('k3'));
      expect((await readdir(again)).sort()).toEqual(['b', 'c']);
    });

    it('refuses duplicate keys and names, active parents and unknown parents', async () => {
      await sut.snapshotter.prepare('k', null);
      await expect(sut.snapshotter.prepare('k', null)).rejects.toThrow(/already exists/);
      await expect(sut.snapshotter.prepare('k2', 'k')).rejects.toThrow(/active/);
      await expect(sut.snapshotter.prepare('k3', 'nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await sut.snapshotter.commit('n', 'k');
      await sut.snapshotter.prepare('k4', null);
      await expect(sut.snapshotter.commit('n', 'k4')).rejects.toThrow(/already exists/);
      await expect(sut.snapshotter.view('k4')).rejects.toThrow(/active/);
    });

    it('refuses to remove a parent, then removes leaf first', async () => {
      await layer('k1', null, { a: '1' }, 'p');
      await sut.snapshotter.prepare('child', 'p');
      await expect(sut.snapshotter.remove('p')).rejects.toThrow(/parent of "child"/);
      await sut.snapshotter.remove('child');
      await sut.snapshotter.remove('p');
      expect(await collect()).toEqual([]);
      await expect(sut.snapshotter.remove('p')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('lists every snapshot with its kind and parent', async () => {
      await layer('k1', null, { a: '1' }, 'p');
      await sut.snapshotter.prepare('k2', 'p');
      const all = await collect();
      expect(all.map((s) => [s.name, s.kind, s.parent])).toEqual([
        ['k2', 'active', 'p'],
        ['p', 'committed', null],
      ]);
      expect(all.every((s) => s.createdAt > 0)).toBe(true);
    });

    it('counts usage of a snapshot own layer only', async () => {
      await layer('k1', null, { big: 'x'.repeat(200_000) }, 'p');
      await layer('k2', 'p', { small: 'y' }, 'c');
      const p = await sut.snapshotter.usage('p');
      const c = await sut.snapshotter.usage('c');
      expect(p.size).toBeGreaterThanOrEqual(200_000);
      expect(c.size).toBeLessThan(100_000);
      expect(c.inodes).toBe(2); // the root dir and `small`
    });

    it('sweeps what a crashed process left: mounts and active snapshots, not committed ones', async () => {
      if (!sut.sweep) return;
      await layer('k1', null, { a: '1' }, 'keep');
      const mounts = await sut.snapshotter.prepare('crashed', 'keep');
      // Left mounted inside the state root, as a killed worker would leave it.
      const inside = path.join(sut.root, 'leftover-mnt');
      await mkdir(inside);
      await mountAt(mounts[0]!, inside);
      await sut.sweep();
      expect(await mountsUnder(sut.root)).toEqual([]);
      expect(await sut.snapshotter.stat('crashed')).toBeUndefined();
      expect(await sut.snapshotter.stat('keep')).toMatchObject({ kind: 'committed' });
      const view = await mount(await sut.snapshotter.view('keep'));
      expect(await readFile(path.join(view, 'a'), 'utf8')).toBe('1');
    });

    it('handles a deep parent chain', async () => {
      let parent: string | null = null;
      for (let i = 0; i < 30; i++) {
        await layer(`k${i}`, parent, { [`f${i}`]: String(i) }, `n${i}`);
        parent = `n${i}`;
      }
      const dir = await mount(await sut.snapshotter.view(parent!));
      expect((await readdir(dir)).length).toBe(30);
      expect(await readFile(path.join(dir, 'f0'), 'utf8')).toBe('0');
    });
  });
}
