import type { BlobInfo, ContentStore } from '../core/content.js';
import type { Digest } from '../core/digest.js';
import { treeSize } from './cache-mounts.js';
import type { CacheKeyIndex, LayerRef } from './key-index.js';
import { cacheMountResource, snapshotResource, type LeaseManager } from './leases.js';

export type UsageKind = 'blob' | 'cache-record' | 'snapshot' | 'cache-mount' | 'ingest' | 'lease';

export const USAGE_KINDS: readonly UsageKind[] = ['blob', 'cache-record', 'snapshot', 'cache-mount', 'ingest', 'lease'];

/**
 * One thing that takes disk space. `size` is bytes on disk (blocks), so
 * metadata counts. A blob's and a cache record's id is their digest (the
 * blob's, the cache key), typed so, so GC deletes them without re-parsing.
 */
export type UsageItem =
  | (UsageItemBase & { readonly kind: 'blob'; readonly id: Digest })
  | (UsageItemBase & { readonly kind: 'cache-record'; readonly id: Digest })
  | (UsageItemBase & { readonly kind: Exclude<UsageKind, 'blob' | 'cache-record'>; readonly id: string });

interface UsageItemBase {
  /** A name for people (a cache mount's Dockerfile id); absent when the id says it all. */
  readonly name?: string;
  readonly size: number;
  /** Milliseconds since the epoch; 0 when unknown. */
  readonly lastUsedAt: number;
  /** Held by a lease or a running step: never removed. */
  readonly inUse: boolean;
}

/** Anything GC may list and remove: snapshots (owned by the snapshotter), cache mounts. */
export interface PrunableSource {
  list(): AsyncIterable<{ readonly id: string; readonly name?: string; readonly size: number; readonly lastUsedAt: number; readonly inUse: boolean }>;
  remove(id: string): Promise<void>;
}

/** A content store that can report more than the ContentStore interface (LocalContentStore does). */
export interface UsageAwareStore extends ContentStore {
  listWithTimes?(): Promise<Array<BlobInfo & { lastUsedAt: number; diskSize?: number }>>;
  ingestBytes?(): Promise<number>;
}

/** What usage and GC look at; the solver's owner builds it once. */
export interface CacheParts {
  readonly store: UsageAwareStore;
  readonly index: CacheKeyIndex;
  readonly leases?: LeaseManager;
  /** Snapshots, given by the snapshotter's owner (a committed snapshot is re-creatable from blobs). */
  readonly snapshots?: PrunableSource;
  readonly cacheMounts?: PrunableSource;
}

export interface KindTotal {
  readonly count: number;
  readonly size: number;
  /** Latest last use among the kind's items (0 when none). */
  readonly lastUsedAt: number;
}

export interface DiskUsage {
  readonly items: readonly UsageItem[];
  readonly byKind: Readonly<Record<UsageKind, KindTotal>>;
  readonly total: number;
  /** Layers named by each cache record, for GC's mark phase. */
  readonly recordLayers: ReadonlyMap<Digest, readonly LayerRef[]>;
  /** Resources unexpired leases protect (plus any extra the caller passed). */
  readonly leased: ReadonlySet<string>;
}

/** The lease resources that hold an item: a lease naming any of them keeps it. */
export function leaseNamesOf(item: { readonly kind: UsageKind; readonly id: string; readonly name?: string }): string[] {
  switch (item.kind) {
    case 'blob':
    case 'cache-record':
      return [item.id];
    case 'snapshot':
      return [snapshotResource(item.id)];
    case 'cache-mount':
      return item.name === undefined ? [cacheMountResource(item.id)] : [cacheMountResource(item.id), cacheMountResource(item.name)];
    default:
      return [];
  }
}

export async function diskUsage(parts: CacheParts, extraProtect: Iterable<string> = []): Promise<DiskUsage> {
  const leased = new Set(parts.leases ? await parts.leases.protectedResources() : []);
  for (const r of extraProtect) leased.add(r);
  const held = (item: Parameters<typeof leaseNamesOf>[0]) => leaseNamesOf(item).some((r) => leased.has(r));
  const items: UsageItem[] = [];

  const blobs = parts.store.listWithTimes ? await parts.store.listWithTimes() : await collect(parts.store.list());
  for (const b of blobs) {
    const withTimes = b as BlobInfo & { lastUsedAt?: number; diskSize?: number };
    items.push({
      kind: 'blob',
      id: b.digest,
      size: withTimes.diskSize ?? b.size,
      lastUsedAt: withTimes.lastUsedAt ?? 0,
      inUse: held({ kind: 'blob', id: b.digest }),
    });
  }

  const recordLayers = new Map<Digest, readonly LayerRef[]>();
  for await (const r of parts.index.list()) {
    recordLayers.set(r.key, r.record.layers);
    items.push({ kind: 'cache-record', id: r.key, size: r.diskSize, lastUsedAt: r.record.lastUsedAt, inUse: held({ kind: 'cache-record', id: r.key }) });
  }

  if (parts.snapshots) {
    for await (const s of parts.snapshots.list()) {
      items.push({ kind: 'snapshot', id: s.id, size: s.size, lastUsedAt: s.lastUsedAt, inUse: s.inUse || held({ kind: 'snapshot', id: s.id }) });
    }
  }
  if (parts.cacheMounts) {
    for await (const m of parts.cacheMounts.list()) {
      const inUse = m.inUse || held({ kind: 'cache-mount', id: m.id, ...(m.name !== undefined ? { name: m.name } : {}) });
      items.push({ kind: 'cache-mount', id: m.id, ...(m.name !== undefined ? { name: m.name } : {}), size: m.size, lastUsedAt: m.lastUsedAt, inUse });
    }
  }

  // In-progress writes and lease files are not removable, but they take disk the cap must count.
  const ingest = parts.store.ingestBytes ? await parts.store.ingestBytes() : 0;
  if (ingest > 0) items.push({ kind: 'ingest', id: 'ingest', size: ingest, lastUsedAt: Date.now(), inUse: true });
  if (parts.leases) {
    const size = await treeSize(parts.leases.dir);
    if (size > 0) items.push({ kind: 'lease', id: 'leases', size, lastUsedAt: Date.now(), inUse: true });
  }

  return { items, byKind: totals(items), total: items.reduce((n, i) => n + i.size, 0), recordLayers, leased };
}

export function totals(items: readonly UsageItem[]): Record<UsageKind, KindTotal> {
  const out = Object.fromEntries(USAGE_KINDS.map((k) => [k, { count: 0, size: 0, lastUsedAt: 0 }])) as Record<UsageKind, { count: number; size: number; lastUsedAt: number }>;
  for (const i of items) {
    const t = out[i.kind];
    t.count++;
    t.size += i.size;
    t.lastUsedAt = Math.max(t.lastUsedAt, i.lastUsedAt);
  }
  return out;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
