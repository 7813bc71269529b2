import type { BuildEventBody, CacheSpec } from '../core/build.js';
import type { Digest } from '../core/digest.js';
import { exportCache, importCache, type CacheIndexRecord, type CacheKeyIndex, type LazyBlobStore, type LayerRef } from '../cache/index.js';
import { parseReference, type RegistryClient } from '../registry-client/index.js';
import type { Descriptor } from '../core/oci.js';
import type { Graph } from './graph/index.js';
import type { VertexResult } from './solver/index.js';

/** What moving cache records in and out of a build needs. */
export interface CacheIoDeps {
  readonly registry: RegistryClient;
  /** Local blobs plus those imported caches can fetch. */
  readonly lazy: LazyBlobStore;
  readonly index: CacheKeyIndex;
}

/**
 * `--cache-from`: each source's records and fetchable blobs. A source that
 * cannot be read (not pushed yet, unreachable) is a warning, as in BuildKit:
 * the build just runs without it.
 */
export async function importCaches(io: CacheIoDeps, specs: readonly CacheSpec[], emit: (e: BuildEventBody) => void, signal?: AbortSignal) {
  const records = new Map<Digest, { readonly layers: readonly LayerRef[]; readonly createdAt?: number }>();
  const mountFrom = new Map<string, string[]>();
  const unregister: Array<() => void> = [];
  for (const spec of specs) {
    try {
      const c = await importCache(spec.type === 'registry' ? { type: 'registry', ref: spec.ref } : { type: 'local', dir: spec.dir }, io.registry, signal);
      for (const [k, l] of c.records) if (!records.has(k)) records.set(k, l);
      unregister.push(io.lazy.register(c.blobs));
      if (c.registry) mountFrom.set(c.registry.host, [...(mountFrom.get(c.registry.host) ?? []), c.registry.repository]);
    } catch (err) {
      signal?.throwIfAborted();
      emit({ type: 'warning', message: `--cache-from ignored: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  return {
    records,
    mountFrom,
    async [Symbol.asyncDispose]() {
      for (const u of unregister) u();
    },
  };
}

/**
 * Layers this store knows only through an imported registry cache, pushed to
 * the same registry, are mounted from the cache repository: nothing is
 * downloaded. Anything else is fetched lazily by the push itself.
 */
export async function mountFromCaches(io: CacheIoDeps, image: ImageLayers, refs: readonly string[], mountFrom: ReadonlyMap<string, string[]>, signal?: AbortSignal): Promise<void> {
  if (mountFrom.size === 0) return;
  for (const r of refs) {
    const ref = parseReference(r);
    const repos = mountFrom.get(ref.registry);
    if (!repos) continue;
    for (const l of image.layers) {
      if (await io.lazy.isLocal(l.digest)) continue;
      await io.registry.pushBlob(ref, l, io.lazy, { mountFrom: repos, ...(signal ? { signal } : {}) });
    }
  }
}

/** The layers of what a build made: one image's, or every platform's of an index. */
export interface ImageLayers {
  readonly layers: readonly Descriptor[];
}

/** `--cache-to`: min exports the records of the final image's chain, max every step's. */
export async function exportCaches(
  io: CacheIoDeps,
  specs: readonly CacheSpec[],
  graph: Graph,
  results: ReadonlyMap<Digest, VertexResult>,
  image: ImageLayers,
  emit: (e: BuildEventBody) => void,
  signal?: AbortSignal,
): Promise<void> {
  for (const spec of specs) {
    const finalLayers = new Set(image.layers.map((l) => l.digest));
    const records = new Map<Digest, CacheIndexRecord>();
    for (const [d, r] of results) {
      const kind = graph.get(d).def.kind;
      if (kind === 'local' || kind === 'http') continue;
      if ((spec.mode ?? 'min') === 'min' && !r.layers.every((l) => finalLayers.has(l.digest))) continue;
      const createdAt = (await io.index.get(r.key))?.createdAt;
      records.set(r.key, { key: r.key, layers: r.layers, ...(createdAt !== undefined ? { createdAt } : {}) });
    }
    try {
      await exportCache(spec.type === 'registry' ? { type: 'registry', ref: spec.ref } : { type: 'local', dir: spec.dir }, [...records.values()], io.lazy, io.registry, signal ? { signal } : {});
    } catch (err) {
      if (!spec.ignoreError || signal?.aborted) throw err;
      emit({ type: 'warning', message: `--cache-to failed (ignore-error=true): ${err instanceof Error ? err.message : String(err)}` });
    }
  }
}
