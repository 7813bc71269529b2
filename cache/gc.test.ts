import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Digest } from '../core/digest.js';
import {
  CacheKeyIndex,
  CacheMounts,
  LeaseManager,
  LocalContentStore,
  diskUsage,
  parsePruneFilters,
  prune,
  snapshotResource,
  startGcLoop,
  writeBlob,
  type CacheParts,
  type LayerRef,
  type PrunableSource,
} from './index.js';

const DAY = 86_400_000;

/** Snapshots as plain directories: the real snapshotter is another module's; GC only needs list/remove. */
class DirSnapshots implements PrunableSource {
  readonly busy = new Set<string>();
  constructor(readonly root: string) {}
  async add(id: string, bytes: number, lastUsedAt: number): Promise<void> {
    await mkdir(join(this.root, id), { recursive: true });
    await writeFile(join(this.root, id, 'data'), randomBytes(bytes));
    await utimes(join(this.root, id), lastUsedAt / 1000, lastUsedAt / 1000);
  }
  async *list() {
    for (const id of await readdir(this.root).catch(() => [] as string[])) {
      const st = await stat(join(this.root, id, 'data'));
      const dirSt = await stat(join(this.root, id));
      yield { id, size: st.blocks * 512, lastUsedAt: dirSt.mtimeMs, inUse: this.busy.has(id) };
    }
  }
  async remove(id: string): Promise<void> {
    await rm(join(this.root, id), { recursive: true, force: true });
  }
}

async function blobOf(store: LocalContentStore, bytes: number, ageMs = 0): Promise<LayerRef> {
  const info = await writeBlob(store, randomBytes(bytes));
  if (ageMs) {
    const t = (Date.now() - ageMs) / 1000;
    await utimes(store.blobPath(info.digest), t, t);
  }
  return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: info.digest, size: info.size, diffId: info.digest };
}

async function present(store: LocalContentStore, d: Digest): Promise<boolean> {
  return (await store.stat(d)) !== undefined;
}

describe('usage and prune', () => {
  let dir: string;
  let parts: CacheParts & { store: LocalContentStore; leases: LeaseManager; snapshots: DirSnapshots; cacheMounts: CacheMounts };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'buildlite-gc-'));
    parts = {
      store: new LocalContentStore(join(dir, 'content')),
      index: new CacheKeyIndex(join(dir, 'index')),
      leases: new LeaseManager(join(dir, 'leases')),
      snapshots: new DirSnapshots(join(dir, 'snapshots')),
      cacheMounts: new CacheMounts(join(dir, 'cache-mounts')),
    };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports usage by kind, with sizes on disk and last use', async () => {
    const l = await blobOf(parts.store, 50_000);
    await parts.index.put(l.digest, { layers: [l], createdAt: 5, lastUsedAt: 5 });
    await parts.snapshots.add('snap-a', 20_000, Date.now() - DAY);
    const m = await parts.cacheMounts.acquire('go', 'shared');
    await writeFile(join(m.dir, 'f'), randomBytes(10_000));
    await m.release();
    await using _l = await parts.leases.acquire('b', [l.digest], 60_000);

    const u = await diskUsage(parts);
    expect(u.byKind.blob).toMatchObject({ count: 1 });
    expect(u.byKind.blob.size).toBeGreaterThanOrEqual(50_000);
    expect(u.byKind['cache-record'].count).toBe(1);
    expect(u.byKind['cache-record'].size).toBeGreaterThan(0); // metadata is counted
    expect(u.byKind.snapshot.size).toBeGreaterThanOrEqual(20_000);
    expect(u.byKind['cache-mount'].size).toBeGreaterThanOrEqual(10_000);
    expect(u.byKind.lease.count).toBe(1);
    expect(u.items.find((i) => i.kind === 'blob')?.inUse).toBe(true);
    expect(u.total).toBe(u.items.reduce((n, i) => n + i.size, 0));
  });

  it('prune --all removes everything nothing holds; leased items and young garbage stay', async () => {
    const kept = await blobOf(parts.store, 10_000);
    const gone = await blobOf(parts.store, 10_000);
    const young = await blobOf(parts.store, 10_000); // no record yet: a build may be about to write one
    await parts.index.put(kept.digest, { layers: [kept], createdAt: 1, lastUsedAt: 1 });
    await parts.index.put(gone.digest, { layers: [gone], createdAt: 1, lastUsedAt: 1 });
    await parts.snapshots.add('busy', 1000, 1);
    await parts.snapshots.add('leased', 1000, 1);
    await parts.snapshots.add('idle', 1000, 1);
    parts.snapshots.busy.add('busy');
    const lease = await parts.leases.acquire('build-7', [kept.digest, snapshotResource('leased')], 60_000);

    const r = await prune(parts, { all: true });
    expect(await present(parts.store, kept.digest)).toBe(true);
    expect(await parts.index.get(kept.digest)).toBeDefined();
    expect(await present(parts.store, gone.digest)).toBe(false);
    expect(await parts.index.get(gone.digest)).toBeUndefined();
    expect(await present(parts.store, young.digest)).toBe(true);
    expect((await readdir(join(dir, 'snapshots'))).sort()).toEqual(['busy', 'leased']);
    expect(r.freedBytes).toBe(r.removed.reduce((n, i) => n + i.size, 0));
    expect(r.removed.map((i) => i.kind).sort()).toEqual(['blob', 'cache-record', 'snapshot']);

    await lease.release();
    const r2 = await prune(parts, { all: true, unreferencedGraceMs: 0 });
    expect(await present(parts.store, kept.digest)).toBe(false);
    expect(await present(parts.store, young.digest)).toBe(false);
    expect(r2.usageAfter).toBeLessThan(r2.usageBefore);
  });

  it('a build that leases during a pass keeps what it leased: each removal asks the leases again', async () => {
    const a = await blobOf(parts.store, 10_000);
    const b = await blobOf(parts.store, 10_000);
    await parts.index.put(a.digest, { layers: [a], createdAt: 1, lastUsedAt: 1 });
    await parts.index.put(b.digest, { layers: [b], createdAt: 1, lastUsedAt: 1 });
    for (const id of ['s1', 's2', 's3']) await parts.snapshots.add(id, 1000, 1);
    // The pass has listed everything as free; while it removes the first item, a build starts
    // and leases the rest (the records and blobs it found, the snapshots it will mount).
    const leases = parts.leases;
    let lease: Awaited<ReturnType<LeaseManager['acquire']>> | undefined;
    const realDelete = parts.index.delete.bind(parts.index);
    let first: string | undefined;
    parts.index.delete = async (key: Digest) => {
      if (first === undefined) {
        first = key;
        const other = key === a.digest ? b : a;
        lease = await leases.acquire('build-started-mid-pass', [other.digest, ...['s1', 's2', 's3'].map(snapshotResource)], 60_000);
      }
      return realDelete(key);
    };
    try {
      const r = await prune(parts, { all: true, unreferencedGraceMs: 0 });
      const other = first === a.digest ? b : a;
      expect(await parts.index.get(other.digest)).toBeDefined();
      expect(await present(parts.store, other.digest)).toBe(true);
      expect((await readdir(join(dir, 'snapshots'))).sort()).toEqual(['s1', 's2', 's3']);
      expect(r.removed.map((i) => i.id).sort()).toEqual([first, first].sort());
      expect(r.failed).toEqual([]);
    } finally {
      await lease?.release();
    }
  });

  it('keep-duration removes only what was not used recently; a shared layer stays while one record needs it', async () => {
    const base = await blobOf(parts.store, 10_000);
    const oldTop = await blobOf(parts.store, 10_000);
    const newTop = await blobOf(parts.store, 10_000);
    const now = Date.now();
    await parts.index.put(oldTop.digest, { layers: [base, oldTop], createdAt: now - 10 * DAY, lastUsedAt: now - 10 * DAY });
    await parts.index.put(newTop.digest, { layers: [base, newTop], createdAt: now, lastUsedAt: now });
    await utimes(join(dir, 'index', 'records', `${oldTop.digest.slice(7)}.json`), (now - 10 * DAY) / 1000, (now - 10 * DAY) / 1000);

    await prune(parts, { keepDurationMs: 2 * DAY });
    expect(await parts.index.get(oldTop.digest)).toBeUndefined();
    expect(await present(parts.store, oldTop.digest)).toBe(false);
    expect(await present(parts.store, base.digest)).toBe(true);
    expect(await present(parts.store, newTop.digest)).toBe(true);
  });

  it('filters select what may go', async () => {
    const l = await blobOf(parts.store, 1000);
    await parts.index.put(l.digest, { layers: [l], createdAt: 1, lastUsedAt: 1 });
    const m = await parts.cacheMounts.acquire('ccache', 'shared');
    await m.release();
    const r = await prune(parts, { filter: parsePruneFilters(['type=exec.cachemount']) });
    expect(r.removed.map((i) => i.kind)).toEqual(['cache-mount']);
    expect(await parts.index.get(l.digest)).toBeDefined();
  });

  it('keeps usage under a hard cap during a running build, without touching what the build holds', async () => {
    // Twenty cached steps from earlier builds, least recently used first.
    const now = Date.now();
    const old: LayerRef[] = [];
    for (let i = 0; i < 20; i++) {
      const l = await blobOf(parts.store, 64 * 1024, DAY);
      old.push(l);
      await parts.index.put(l.digest, { layers: [l], createdAt: now - DAY, lastUsedAt: now - DAY + i * 1000 });
      const t = (now - DAY + i * 1000) / 1000;
      await utimes(join(dir, 'index', 'records', `${l.digest.slice(7)}.json`), t, t);
    }
    const cap = 8 * 68 * 1024; // room for a few records, not for all

    // The running build: it leases each layer as it commits it, and writes its records at the end.
    const lease = await parts.leases.acquire('build-running', [], 60_000);
    const buildLayers: LayerRef[] = [];
    const build = (async () => {
      for (let i = 0; i < 4; i++) {
        const l = await blobOf(parts.store, 64 * 1024);
        await lease.add([l.digest]);
        buildLayers.push(l);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const loopStop = new AbortController();
    const results: Array<{ after: number; under: boolean }> = [];
    const loop = startGcLoop(parts, { keepStorageBytes: cap }, 10, loopStop.signal, (r) => {
      if (r) results.push({ after: r.usageAfter, under: r.underBudget });
    });
    await build;
    const final = await loop.runNow();
    loopStop.abort();
    await loop.stopped;

    for (const l of buildLayers) expect(await present(parts.store, l.digest)).toBe(true);
    expect(final.underBudget).toBe(true);
    expect((await diskUsage(parts)).total).toBeLessThanOrEqual(cap);
    expect(results.length).toBeGreaterThan(0);
    // LRU: the most recently used old record outlived the least recently used one.
    expect(await parts.index.get(old[0]!.digest)).toBeUndefined();
    expect(await present(parts.store, old[0]!.digest)).toBe(false);
    for (const l of buildLayers) await parts.index.put(l.digest, { layers: [l], createdAt: now, lastUsedAt: Date.now() });
    await lease.release();
    // Records whose blobs are gone would be misses; every remaining record still has its blobs.
    for await (const e of parts.index.list()) for (const l of e.record.layers) expect(await present(parts.store, l.digest)).toBe(true);
  });

  it('reports when held items alone exceed the budget', async () => {
    const l = await blobOf(parts.store, 100_000);
    await using _lease = await parts.leases.acquire('b', [l.digest], 60_000);
    const r = await prune(parts, { keepStorageBytes: 1000 });
    expect(r.underBudget).toBe(false);
    expect(await present(parts.store, l.digest)).toBe(true);
    await expect(prune(parts, { keepStorageBytes: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('dangling records', () => {
  it('drops a record whose blob is gone, and keeps one whose blobs are present', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'buildlite-gc-dangling-'));
    try {
      const parts = { store: new LocalContentStore(join(dir, 'c')), index: new CacheKeyIndex(join(dir, 'i')) };
      const a = await blobOf(parts.store, 1000);
      const b = await blobOf(parts.store, 1000);
      await parts.index.put(a.digest, { layers: [a], createdAt: 1, lastUsedAt: 1 });
      await parts.index.put(b.digest, { layers: [a, b], createdAt: 1, lastUsedAt: 1 });
      await parts.store.delete(b.digest);
      const r = await prune(parts, {});
      expect(r.removed.map((i) => i.id)).toEqual([b.digest]);
      expect(await parts.index.get(b.digest)).toBeUndefined();
      expect(await parts.index.get(a.digest)).toBeDefined();
      expect(await present(parts.store, a.digest)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
