import path from 'node:path';
import { parseBytes } from '../core/bytes.js';
import { parseDigest } from '../core/digest.js';
import { parseDuration } from '../core/duration.js';
import type { Descriptor } from '../core/oci.js';
import {
  CacheKeyIndex,
  CacheMounts,
  explainMiss,
  formatExplanation,
  LeaseManager,
  LocalContentStore,
  parsePruneFilters,
  prune,
  readJson,
  snapshotSource,
  type CacheParts,
  type PruneResult,
} from '../cache/index.js';
import type { TagStore } from './image/index.js';
import { chainId } from './layers/index.js';
import { OverlaySnapshotter } from './snapshot/index.js';

/** `buildlite prune` as data: sizes and durations as people type them (`10GB`, `24h`). */
export interface PruneSpec {
  readonly all?: boolean;
  readonly keepDuration?: string | number;
  readonly keepStorage?: string | number;
  /** `type=KIND`, `until=DURATION`, `id=PREFIX`, ANDed. */
  readonly filters?: readonly string[];
  readonly signal?: AbortSignal;
}

/**
 * What GC looks at in a state root: the stores, the index, leases, snapshots
 * (as a PrunableSource) and cache mounts. Parts a running builder already has
 * are reused; the rest are opened without any sweep (a build may be running).
 */
export function partsAt(
  root: string,
  have: { store?: LocalContentStore; index?: CacheKeyIndex; leases?: LeaseManager; snapshotter?: OverlaySnapshotter } = {},
): CacheParts {
  const index = have.index ?? new CacheKeyIndex(path.join(root, 'cache'));
  const snapshotter = have.snapshotter ?? new OverlaySnapshotter(path.join(root, 'snapshots'));
  return {
    store: have.store ?? new LocalContentStore(path.join(root, 'content')),
    index,
    leases: have.leases ?? new LeaseManager(path.join(root, 'leases')),
    snapshots: snapshotSource(snapshotter, index, (layers) => (layers.length ? chainId(layers.map((l) => l.diffId)) : null)),
    cacheMounts: new CacheMounts(path.join(root, 'cache-mounts')),
  };
}

/** Tagged images are roots: their manifest, config and layers stay whatever the records say. */
export async function pruneParts(parts: CacheParts, tags: TagStore, spec: PruneSpec): Promise<PruneResult> {
  const protect: string[] = [];
  for (const m of await tags.roots()) {
    protect.push(m);
    try {
      const doc = await readJson<{ config: Descriptor; layers: Descriptor[] }>(parts.store, m, 4 << 20);
      protect.push(doc.config.digest, ...doc.layers.map((l) => l.digest));
    } catch {
      // A tag whose manifest is gone protects nothing more.
    }
  }
  const size = (v: string | number | undefined) => (typeof v === 'string' ? parseBytes(v) : v);
  const dur = (v: string | number | undefined) => (typeof v === 'string' ? parseDuration(v) : v);
  const keepStorageBytes = size(spec.keepStorage);
  const keepDurationMs = dur(spec.keepDuration);
  return prune(parts, {
    ...(spec.all ? { all: true } : {}),
    ...(keepStorageBytes !== undefined ? { keepStorageBytes } : {}),
    ...(keepDurationMs !== undefined ? { keepDurationMs } : {}),
    ...(spec.filters?.length ? { filter: parsePruneFilters(spec.filters) } : {}),
    protect,
    ...(spec.signal ? { signal: spec.signal } : {}),
  });
}

/**
 * `buildlite debug why-miss`: why each step of the last `--debug-cache` build
 * ran (`key` omitted), or why one key missed. Lines for people.
 */
export async function explainMissAt(root: string, key?: string): Promise<string[]> {
  const index = new CacheKeyIndex(path.join(path.resolve(root), 'cache'));
  const keys = key !== undefined ? [{ key: parseDigest(key), name: key }] : await index.getLastBuild();
  if (keys.length === 0) return ['the last build kept no pre-images, or ran no step: rebuild with --debug-cache'];
  const lines: string[] = [];
  for (const k of keys) {
    const e = await explainMiss(index, k.key);
    lines.push(...(e ? formatExplanation(e) : [`${k.name}: no pre-image stored for ${k.key} (build with --debug-cache)`]), '');
  }
  return lines;
}
