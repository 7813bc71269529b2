import { treeSize } from './cache-mounts.js';
import { cacheMountResource, snapshotResource } from './leases.js';
export const USAGE_KINDS = ['blob', 'cache-record', 'snapshot', 'cache-mount', 'ingest', 'lease'];
export async function diskUsage(parts, extraProtect = []) {
    const leased = new Set(parts.leases ? await parts.leases.protectedResources() : []);
    for (const r of extraProtect)
        leased.add(r);
    const items = [];
    const blobs = parts.store.listWithTimes ? await parts.store.listWithTimes() : await collect(parts.store.list());
    for (const b of blobs) {
        const withTimes = b;
        items.push({
            kind: 'blob',
            id: b.digest,
            size: withTimes.diskSize ?? b.size,
            lastUsedAt: withTimes.lastUsedAt ?? 0,
            inUse: leased.has(b.digest),
        });
    }
    const recordLayers = new Map();
    for await (const r of parts.index.list()) {
        recordLayers.set(r.key, r.record.layers);
        items.push({ kind: 'cache-record', id: r.key, size: r.diskSize, lastUsedAt: r.record.lastUsedAt, inUse: leased.has(r.key) });
    }
    if (parts.snapshots) {
        for await (const s of parts.snapshots.list()) {
            items.push({ kind: 'snapshot', id: s.id, size: s.size, lastUsedAt: s.lastUsedAt, inUse: s.inUse || leased.has(snapshotResource(s.id)) });
        }
    }
    if (parts.cacheMounts) {
        for await (const m of parts.cacheMounts.list()) {
            const inUse = m.inUse || leased.has(cacheMountResource(m.id)) || (m.name !== undefined && leased.has(cacheMountResource(m.name)));
            items.push({ kind: 'cache-mount', id: m.id, ...(m.name !== undefined ? { name: m.name } : {}), size: m.size, lastUsedAt: m.lastUsedAt, inUse });
        }
    }
    // In-progress writes and lease files are not removable, but they take disk the cap must count.
    const ingest = parts.store.ingestBytes ? await parts.store.ingestBytes() : 0;
    if (ingest > 0)
        items.push({ kind: 'ingest', id: 'ingest', size: ingest, lastUsedAt: Date.now(), inUse: true });
    if (parts.leases) {
        const size = await treeSize(parts.leases.dir);
        if (size > 0)
            items.push({ kind: 'lease', id: 'leases', size, lastUsedAt: Date.now(), inUse: true });
    }
    return { items, byKind: totals(items), total: items.reduce((n, i) => n + i.size, 0), recordLayers, leased };
}
export function totals(items) {
    const out = Object.fromEntries(USAGE_KINDS.map((k) => [k, { count: 0, size: 0, lastUsedAt: 0 }]));
    for (const i of items) {
        const t = out[i.kind];
        t.count++;
        t.size += i.size;
        t.lastUsedAt = Math.max(t.lastUsedAt, i.lastUsedAt);
    }
    return out;
}
async function collect(it) {
    const out = [];
    for await (const x of it)
        out.push(x);
    return out;
}
//# sourceMappingURL=usage.js.map