import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileAttrs, takesTopdir } from '../test/helpers/file-attrs.js';
import { CacheMounts, type CacheMountUsage } from './index.js';

async function listAll(m: CacheMounts): Promise<CacheMountUsage[]> {
  const out: CacheMountUsage[] = [];
  for await (const x of m.list()) out.push(x);
  return out;
}

describe('CacheMounts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'buildlite-cmounts-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('shared: concurrent users get the same directory, and it persists', async () => {
    const mounts = new CacheMounts(join(dir, 'shared'));
    const [a, b] = await Promise.all([mounts.acquire('go-build', 'shared'), mounts.acquire('go-build', 'shared')]);
    expect(a.dir).toBe(b.dir);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
    await writeFile(join(a.dir, 'obj'), 'compiled');
    await a.release();
    await b.release();
    const again = await new CacheMounts(join(dir, 'shared')).acquire('go-build', 'shared');
    expect(again.created).toBe(false);
    expect(await readFile(join(again.dir, 'obj'), 'utf8')).toBe('compiled');
    await again.release();
  });

  it('private: concurrent users get different directories, which later users reuse', async () => {
    const mounts = new CacheMounts(join(dir, 'private'));
    const held = await Promise.all([1, 2, 3].map(() => mounts.acquire('npm', 'private')));
    expect(new Set(held.map((h) => h.dir)).size).toBe(3);
    await writeFile(join(held[0]!.dir, 'marker'), 'first');
    for (const h of held) await h.release();
    const next = await mounts.acquire('npm', 'private');
    expect(next.dir).toBe(held[0]!.dir);
    expect(next.created).toBe(false);
    expect(await readFile(join(next.dir, 'marker'), 'utf8')).toBe('first');
    // While a private user holds a directory, a shared user must not see it change under it.
    let sharedGot = false;
    const shared = mounts.acquire('npm', 'shared').then((h) => ((sharedGot = true), h));
    await new Promise((r) => setTimeout(r, 20));
    expect(sharedGot).toBe(false);
    await next.release();
    const s = await shared;
    expect(s.dir).toBe(next.dir);
    await s.release();
  });

  it('locked: one user at a time, in turn; a waiter can be aborted', async () => {
    const mounts = new CacheMounts(join(dir, 'locked'));
    const order: string[] = [];
    const first = await mounts.acquire('apt', 'locked');
    const second = mounts.acquire('apt', 'locked').then((h) => {
      order.push('second acquired');
      return h;
    });
    const ac = new AbortController();
    const aborted = mounts.acquire('apt', 'locked', { signal: ac.signal });
    const sharedWaiter = mounts.acquire('apt', 'shared').then((h) => {
      order.push('shared acquired');
      return h;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(order).toEqual([]);
    ac.abort();
    await expect(aborted).rejects.toBeTruthy();
    order.push('first released');
    await first.release();
    const s = await second;
    expect(s.dir).toBe(first.dir);
    await new Promise((r) => setTimeout(r, 10));
    expect(order).toEqual(['first released', 'second acquired']);
    await s.release();
    await (await sharedWaiter).release();
    expect(order).toEqual(['first released', 'second acquired', 'shared acquired']);
    expect((await listAll(mounts))[0]?.inUse).toBe(false);
  });

  it.runIf(takesTopdir())('spreads the cache mounts over ext4 block groups (TOPDIR on their parent)', async () => {
    const root = join(dir, 'spread');
    const h = await new CacheMounts(root).acquire('apt', 'shared');
    expect(fileAttrs(root)).toContain('T');
    await h.release();
  });

  it('hashes untrusted ids into names, applies mode and owner on creation, and seeds once', async () => {
    const root = join(dir, 'ids');
    const mounts = new CacheMounts(root);
    let seeded = 0;
    const seed = async (d: string) => {
      seeded++;
      await writeFile(join(d, 'seed'), 'x');
    };
    const h = await mounts.acquire('../../../etc', 'shared', { mode: 0o1777, uid: 1234, gid: 5678, seed });
    expect(relative(root, h.dir)).toMatch(/^[a-f0-9]{64}\/data\/0$/);
    const st = await stat(h.dir);
    expect(st.mode & 0o7777).toBe(0o1777);
    expect([st.uid, st.gid]).toEqual([1234, 5678]);
    expect(await readdir(h.dir)).toEqual(['seed']);
    await h.release();
    await (await mounts.acquire('../../../etc', 'shared', { seed })).release();
    expect(seeded).toBe(1);
    await expect(mounts.acquire('x', 'bogus' as 'shared')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('lists with size and name, and removes only what is not in use', async () => {
    const mounts = new CacheMounts(join(dir, 'gc'));
    const h = await mounts.acquire('pip', 'shared');
    await writeFile(join(h.dir, 'wheel'), Buffer.alloc(100_000, 1));
    const [entry] = await listAll(mounts);
    expect(entry).toMatchObject({ name: 'pip', inUse: true });
    expect(entry!.size).toBeGreaterThanOrEqual(100_000);
    await expect(mounts.remove(entry!.id)).rejects.toMatchObject({ code: 'STORE' });
    await h.release();
    await mounts.remove(entry!.id);
    expect(await listAll(mounts)).toEqual([]);
  });
});
