import type { CacheKeyIndex, LayerRef } from './key-index.js';
import type { PrunableSource } from './usage.js';

/** What GC needs of a snapshotter (builder/snapshot's OverlaySnapshotter has it); cache imports no builder code. */
export interface SnapshotLister {
  list(): AsyncIterable<{ readonly name: string; readonly parent: string | null; readonly kind: 'active' | 'committed'; readonly createdAt: number }>;
  usage(name: string): Promise<{ size: number }>;
  remove(name: string): Promise<void>;
}

/**
 * Snapshots as a PrunableSource. A committed snapshot is a materialised layer
 * chain, re-creatable from blobs, so any of them may go; which go first:
 * - active snapshots are in use (a running step owns them) and never listed as removable;
 * - a snapshot's last use is the latest of its creation and the last use of
 *   the cache records whose chain it is (`chainName` maps a record's layers to
 *   the snapshot name), so a snapshot of a fresh record outlives one nothing names;
 * - a parent counts as used 1 ms after its latest child, so LRU order removes
 *   children first (a parent cannot go while it has children), and the list
 *   itself is deepest first for passes that take everything.
 * Leases (`snapshot:<name>`) are applied by diskUsage on top of this.
 */
export function snapshotSource(
  snapshotter: SnapshotLister,
  index: CacheKeyIndex,
  chainName: (layers: readonly LayerRef[]) => string | null,
): PrunableSource {
  return {
    async *list() {
      const recordUse = new Map<string, number>();
      for await (const r of index.list()) {
        const name = chainName(r.record.layers);
        if (name !== null) recordUse.set(name, Math.max(recordUse.get(name) ?? 0, r.record.lastUsedAt));
      }
      const snaps: Array<{ name: string; parent: string | null; active: boolean; used: number }> = [];
      for await (const s of snapshotter.list()) {
        snaps.push({ name: s.name, parent: s.parent, active: s.kind === 'active', used: Math.max(s.createdAt, recordUse.get(s.name) ?? 0) });
      }
      const byName = new Map(snaps.map((s) => [s.name, s]));
      // Children raise their ancestors' last use; walk each chain up (chains are short).
      const inUse = new Set<string>();
      for (const s of snaps) {
        let child = s;
        for (let p = s.parent; p !== null; ) {
          const parent = byName.get(p);
          if (!parent) break;
          if (s.active) inUse.add(parent.name);
          if (parent.used <= child.used) parent.used = child.used + 1;
          child = parent;
          p = parent.parent;
        }
      }
      // Deepest first: a pass that removes in listing order (`prune --all`) never meets a parent before its children.
      const depth = (s: (typeof snaps)[number]) => {
        let d = 0;
        for (let p = s.parent; p !== null && d < snaps.length; p = byName.get(p)?.parent ?? null) d++;
        return d;
      };
      snaps.sort((a, b) => depth(b) - depth(a) || a.name.localeCompare(b.name));
      for (const s of snaps) {
        const size = await snapshotter.usage(s.name).then((u) => u.size, () => 0);
        yield { id: s.name, size, lastUsedAt: s.used, inUse: s.active || inUse.has(s.name) };
      }
    },
    remove: (id) => snapshotter.remove(id),
  };
}
