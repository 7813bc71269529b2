import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rmdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { BuildEvent, BuildEventBody, BuildRequest, BuildResult, CacheSpec } from '../core/build.js';
import { parseDigest, type Digest } from '../core/digest.js';
import { CodedError, toWire } from '../core/errors.js';
import { mountsUnder, unmountAt } from '../core/mounter.js';
import { EventQueue } from '../core/event-queue.js';
import { DEFAULT_PLATFORM, type Descriptor } from '../core/oci.js';
import {
  CacheKeyIndex,
  CacheMounts,
  diskUsage,
  explainMiss,
  exportCache,
  formatExplanation,
  importCache,
  LazyBlobStore,
  LeaseManager,
  LocalContentStore,
  parseBytes,
  parseDuration,
  parsePruneFilters,
  prune,
  readJson,
  snapshotSource,
  type CacheIndexRecord,
  type CacheParts,
  type DiskUsage,
  type Lease,
  type LayerRef,
  type PruneResult,
} from '../cache/index.js';
import { parseReference, RegistryClient } from '../registry-client/index.js';
import { convertDockerfile } from './dockerfile/index.js';
import { RuncExecutor, type SandboxLimits } from './executor/index.js';
import type { BuildDefinition } from './graph/index.js';
import { buildImageConfig, exportLocalDir, exportOciLayoutTar, exportRootfsTar, exportToRegistry, storeImage, TagStore, type StoredImage } from './image/index.js';
import { RegistryImages } from './image-source.js';
import { registerRootUse, type RootUse } from './root-users.js';
import { PolicedHttpFetcher, type HttpPolicy } from './http-fetch.js';
import { chainId } from './layers/index.js';
import { OverlaySnapshotter } from './snapshot/index.js';
import { checkGraphGrants, ContextHasher, Solver, type VertexResult } from './solver/index.js';

export interface BuilderOptions {
  /** State directory: content store, cache index, snapshots, sandboxes. Made 0700. */
  readonly root: string;
  readonly insecureRegistries?: readonly string[];
  readonly caFile?: string;
  readonly limits?: SandboxLimits;
  /** Operator's half of the network.host grant; the build asks with `allow`. */
  readonly allowHostNetwork?: boolean;
  readonly parallelism?: number;
  /**
   * Network policy for `ADD <url>` (THREATS.md 7). Default strict: loopback,
   * link-local and private addresses are refused unless listed in
   * `allowNetworks`. The embedded CLI sets `allowLoopback` so a developer can
   * fetch from their own machine; a service never should.
   */
  readonly httpPolicy?: HttpPolicy;
}

export interface BuildOptions {
  /** Secret values by id; they never enter events, keys or layers. */
  readonly secrets?: ReadonlyMap<string, Buffer>;
  readonly signal?: AbortSignal;
  readonly debugCache?: boolean;
}

/** `buildlite prune` as data: sizes and durations as people type them (`10GB`, `24h`). */
export interface PruneSpec {
  readonly all?: boolean;
  readonly keepDuration?: string | number;
  readonly keepStorage?: string | number;
  /** `type=KIND`, `until=DURATION`, `id=PREFIX`, ANDed. */
  readonly filters?: readonly string[];
  readonly signal?: AbortSignal;
}

const LEASE_DEFAULTS = {
  /** A build's lease outlives a crashed process by at most this. */
  ttlMs: 10 * 60_000,
  /** A running build renews its lease this often. */
  renewMs: 60_000,
} as const;

/**
 * The builder: one per state directory, shared by the builds it runs. `build`
 * takes a request and yields its events; the last event is `result` or `error`.
 * It knows nothing of queues, Redis or gRPC.
 */
export class Builder {
  private constructor(
    readonly opts: BuilderOptions,
    readonly store: LocalContentStore,
    readonly tags: TagStore,
    readonly snapshotter: OverlaySnapshotter,
    private readonly executor: RuncExecutor,
    private readonly solver: Solver,
    private readonly registry: RegistryClient,
    readonly index: CacheKeyIndex,
    readonly leases: LeaseManager,
    /** The store the solver and exporters read: local blobs plus those an imported cache can fetch. */
    private readonly lazy: LazyBlobStore,
    private readonly use: RootUse,
  ) {}

  /** Stop using the state root (a process that exits is noticed by the next one anyway). */
  async close(): Promise<void> {
    await this.use.release();
  }

  static async open(opts: BuilderOptions): Promise<Builder> {
    const root = path.resolve(opts.root);
    await mkdir(root, { recursive: true, mode: 0o700 });
    const store = new LocalContentStore(path.join(root, 'content'));
    const index = new CacheKeyIndex(path.join(root, 'cache'));
    const snapshotter = new OverlaySnapshotter(path.join(root, 'snapshots'));
    const executor = new RuncExecutor({
      stateDir: path.join(root, 'exec'),
      ...(opts.limits ? { defaults: opts.limits } : {}),
      allowHostNetwork: opts.allowHostNetwork ?? false,
    });
    const tmpDir = path.join(root, 'tmp');
    await mkdir(tmpDir, { recursive: true, mode: 0o700 });
    // A previous process may have died mid-step: reclaim its containers, mounts
    // and active snapshots first, unless another live process is using this root.
    const use = await registerRootUse(root);
    if (use.others === 0) await sweepLeftovers(executor, snapshotter, store, tmpDir);
    const registry = new RegistryClient({
      ...(opts.insecureRegistries ? { insecureRegistries: [...opts.insecureRegistries] } : {}),
      ...(opts.caFile ? { caFile: opts.caFile } : {}),
    });
    const leases = new LeaseManager(path.join(root, 'leases'));
    await leases.sweep();
    const lazy = new LazyBlobStore(store);
    const solver = new Solver(
      {
        store: lazy,
        index,
        snapshotter,
        executor,
        images: new RegistryImages(registry),
        http: new PolicedHttpFetcher(opts.httpPolicy),
        allowHostNetwork: opts.allowHostNetwork ?? false,
        hasher: new ContextHasher(path.join(root, 'statcache')),
        cacheMounts: new CacheMounts(path.join(root, 'cache-mounts')),
        tmpDir,
        ...(opts.limits ? { limits: opts.limits } : {}),
      },
      { parallelism: opts.parallelism ?? availableParallelism() },
    );
    return new Builder({ ...opts, root }, store, new TagStore(root), snapshotter, executor, solver, registry, index, leases, lazy, use);
  }

  build(req: BuildRequest, opts: BuildOptions = {}): AsyncIterable<BuildEvent> {
    const queue = new EventQueue<BuildEvent>();
    let seq = 0;
    const emit = (e: BuildEventBody) => queue.push({ ...e, seq: ++seq } as BuildEvent);
    this.run(req, opts, emit)
      .then((result) => emit({ type: 'result', result }))
      .catch((err: unknown) => emit({ type: 'error', error: toWire(err) }))
      .finally(() => queue.end());
    return queue;
  }

  private async run(req: BuildRequest, opts: BuildOptions, emit: (e: BuildEventBody) => void): Promise<BuildResult> {
    if (!('dir' in req.context)) throw new CodedError('INVALID_ARGUMENT', 'an embedded builder needs a context directory');
    const contextDir = path.resolve(req.context.dir);
    const platform = req.platform ?? DEFAULT_PLATFORM;
    if (platform.os !== 'linux' || platform.architecture !== 'amd64') {
      throw new CodedError('INVALID_ARGUMENT', `platform ${platform.os}/${platform.architecture} is not supported: this builder runs linux/amd64 only`);
    }
    if (req.network === 'host' && !(req.allow ?? []).includes('network.host')) {
      throw new CodedError('PERMISSION_DENIED', '--network=host needs the network.host entitlement: pass --allow network.host');
    }
    const images = new RegistryImages(this.registry);
    const def = await convertDockerfile({
      dockerfile: req.dockerfile,
      fileName: req.dockerfileName ?? 'Dockerfile',
      buildArgs: { ...(req.buildArgs ?? {}) },
      ...(req.target ? { target: req.target } : {}),
      platform,
      resolver: images,
      dockerignore: req.dockerignore ?? (await readOptional(path.join(contextDir, '.dockerignore'))),
      ...(req.labels ? { labels: { ...req.labels } } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(req.network && req.network !== 'default' ? { defaultNetwork: req.network } : {}),
    });
    checkGraphGrants(def.graph, { operatorAllowsHostNetwork: this.opts.allowHostNetwork ?? false, allow: req.allow ?? [] });
    for (const w of def.warnings) emit({ type: 'warning', message: w.message, ...(w.range ? { range: w.range } : {}) });

    // Everything this build uses or makes is leased until it ends, so GC in any process leaves it alone.
    await using lease = await this.takeLease();
    await using imported = await this.importCaches(req.cacheFrom ?? [], emit, opts.signal);

    const results = await this.solver.solve(def.graph, def.root, {
      lease,
      ...(imported.records.size ? { imported: { get: (k: Digest) => imported.records.get(k) } } : {}),
      contextDir,
      secrets: opts.secrets ?? new Map(),
      noCache: req.noCache ?? false,
      noCacheStages: new Set(req.noCacheFilter ?? []),
      ...(req.sourceDateEpoch !== undefined ? { sourceDateEpoch: req.sourceDateEpoch } : {}),
      ...(opts.debugCache ? { debugCache: true } : {}),
      ...(req.allow ? { allow: req.allow } : {}),
      emit,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });

    const image = await this.assemble(def, results, req.sourceDateEpoch);
    await lease.add([image.manifest.digest, image.config.digest]);
    const pushed = await this.export(req, image, emit, opts.signal, imported.mountFrom);
    await this.exportCaches(req.cacheTo ?? [], def, results, image, emit, opts.signal);
    let hits = 0;
    let misses = 0;
    for (const [d, r] of results) {
      const kind = def.graph.get(d).def.kind;
      if (kind === 'local' || kind === 'http') continue;
      if (r.cached) hits++;
      else misses++;
    }
    return { imageDigest: image.manifest.digest, configDigest: image.config.digest, pushed, cache: { hits, misses } };
  }

  private async assemble(def: BuildDefinition, results: ReadonlyMap<Digest, VertexResult>, sourceDateEpoch?: number): Promise<StoredImage> {
    const layers = def.root ? (results.get(def.root)?.layers ?? []) : [];
    const history = def.history.map((h) => {
      const { vertex, ...rest } = h;
      return vertex ? { ...rest, addedLayer: addedLayer(def, results, vertex) } : rest;
    });
    // A fully cached image keeps the time its last step was made, so a warm rebuild has the same digest (as BuildKit).
    const rootKey = def.root ? results.get(def.root)?.key : undefined;
    const madeAt = rootKey ? (await this.index.get(rootKey))?.createdAt : undefined;
    const config = buildImageConfig({
      ...(madeAt !== undefined ? { now: new Date(madeAt) } : {}),
      platform: def.platform,
      config: def.config,
      diffIds: layers.map((l) => l.diffId),
      history,
      ...(sourceDateEpoch !== undefined ? { sourceDateEpoch } : {}),
    });
    return storeImage(this.store, config, layers);
  }

  private async export(
    req: BuildRequest,
    image: StoredImage,
    emit: (e: BuildEventBody) => void,
    signal?: AbortSignal,
    mountFrom: ReadonlyMap<string, string[]> = new Map(),
  ): Promise<string[]> {
    const pushed: string[] = [];
    const onProgress = (id: string, current: number, total?: number) =>
      emit({ type: 'progress', id, action: 'push', current, ...(total !== undefined ? { total } : {}) });
    for (const out of req.outputs ?? []) {
      switch (out.type) {
        case 'registry':
          await this.mountFromCaches(image, out.refs, mountFrom, signal);
          pushed.push(...(await exportToRegistry(this.registry, this.lazy, image, out.refs, { ...(signal ? { signal } : {}), onProgress })).pushed);
          await this.tags.set(out.refs, image.manifest);
          break;
        case 'image':
          await this.tags.set(out.refs, image.manifest);
          break;
        case 'oci':
          await exportOciLayoutTar(this.lazy, image, out.dest, out.refs?.[0], signal);
          break;
        case 'local':
          await exportLocalDir(this.lazy, image, out.dest, signal);
          break;
        case 'tar':
          await exportRootfsTar(this.lazy, image, out.dest, { tmpDir: path.join(this.opts.root, 'tmp'), ...(req.sourceDateEpoch !== undefined ? { sourceDateEpoch: req.sourceDateEpoch } : {}), ...(signal ? { signal } : {}) });
          break;
      }
    }
    return pushed;
  }

  private async takeLease(): Promise<Lease> {
    const lease = await this.leases.acquire(`build-${randomUUID()}`, [], LEASE_DEFAULTS.ttlMs);
    const timer = setInterval(() => void lease.extend(LEASE_DEFAULTS.ttlMs).catch(() => undefined), LEASE_DEFAULTS.renewMs);
    timer.unref();
    const release = async () => {
      clearInterval(timer);
      await lease.release();
    };
    return {
      get id() { return lease.id; },
      get resources() { return lease.resources; },
      get expiresAt() { return lease.expiresAt; },
      add: (r) => lease.add(r),
      extend: (ttl) => lease.extend(ttl),
      release,
      [Symbol.asyncDispose]: release,
    };
  }

  /**
   * `--cache-from`: each source's records and fetchable blobs. A source that
   * cannot be read (not pushed yet, unreachable) is a warning, as in BuildKit:
   * the build just runs without it.
   */
  private async importCaches(specs: readonly CacheSpec[], emit: (e: BuildEventBody) => void, signal?: AbortSignal) {
    const records = new Map<Digest, { readonly layers: readonly LayerRef[]; readonly createdAt?: number }>();
    const mountFrom = new Map<string, string[]>();
    const unregister: Array<() => void> = [];
    for (const spec of specs) {
      try {
        const c = await importCache(spec.type === 'registry' ? { type: 'registry', ref: spec.ref } : { type: 'local', dir: spec.dir }, this.registry, signal);
        for (const [k, l] of c.records) if (!records.has(k)) records.set(k, l);
        unregister.push(this.lazy.register(c.blobs));
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
  private async mountFromCaches(image: StoredImage, refs: readonly string[], mountFrom: ReadonlyMap<string, string[]>, signal?: AbortSignal): Promise<void> {
    if (mountFrom.size === 0) return;
    for (const r of refs) {
      const ref = parseReference(r);
      const repos = mountFrom.get(ref.registry);
      if (!repos) continue;
      for (const l of image.layers) {
        if (await this.lazy.isLocal(l.digest as Digest)) continue;
        await this.registry.pushBlob(ref, l, this.lazy, { mountFrom: repos, ...(signal ? { signal } : {}) });
      }
    }
  }

  /** `--cache-to`: min exports the records of the final image's chain, max every step's. */
  private async exportCaches(
    specs: readonly CacheSpec[],
    def: BuildDefinition,
    results: ReadonlyMap<Digest, VertexResult>,
    image: StoredImage,
    emit: (e: BuildEventBody) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    for (const spec of specs) {
      const finalLayers = new Set(image.layers.map((l) => l.digest));
      const records = new Map<Digest, CacheIndexRecord>();
      for (const [d, r] of results) {
        const kind = def.graph.get(d).def.kind;
        if (kind === 'local' || kind === 'http') continue;
        if ((spec.mode ?? 'min') === 'min' && !r.layers.every((l) => finalLayers.has(l.digest))) continue;
        const createdAt = (await this.index.get(r.key))?.createdAt;
        records.set(r.key, { key: r.key, layers: r.layers, ...(createdAt !== undefined ? { createdAt } : {}) });
      }
      try {
        await exportCache(spec.type === 'registry' ? { type: 'registry', ref: spec.ref } : { type: 'local', dir: spec.dir }, [...records.values()], this.lazy, this.registry, signal ? { signal } : {});
      } catch (err) {
        if (!spec.ignoreError || signal?.aborted) throw err;
        emit({ type: 'warning', message: `--cache-to failed (ignore-error=true): ${err instanceof Error ? err.message : String(err)}` });
      }
    }
  }

  /** Usage of this builder's state, by kind. */
  diskUsage(): Promise<DiskUsage> {
    return diskUsage(this.cacheParts());
  }

  /** Prune this builder's state; what running builds lease is never removed. */
  prune(spec: PruneSpec = {}): Promise<PruneResult> {
    return Builder.pruneParts(this.cacheParts(), this.tags, spec);
  }

  /** What GC looks at: the stores, the index, leases, snapshots (as a PrunableSource) and cache mounts. */
  cacheParts(): CacheParts {
    return Builder.partsAt(this.opts.root, { store: this.store, index: this.index, leases: this.leases, snapshotter: this.snapshotter });
  }

  /** `buildlite du` without opening a builder (no sweep: a build may be running in another process). */
  static diskUsageAt(root: string): Promise<DiskUsage> {
    return diskUsage(Builder.partsAt(path.resolve(root)));
  }

  /** `buildlite prune` without opening a builder; leases of builds in other processes are honoured. */
  static pruneAt(root: string, spec: PruneSpec = {}): Promise<PruneResult> {
    const r = path.resolve(root);
    return Builder.pruneParts(Builder.partsAt(r), new TagStore(r), spec);
  }

  /**
   * `buildlite debug why-miss`: why each step of the last `--debug-cache` build
   * ran (`key` omitted), or why one key missed. Lines for people.
   */
  static async explainMissAt(root: string, key?: string): Promise<string[]> {
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

  private static partsAt(
    root: string,
    have: { store?: LocalContentStore; index?: CacheKeyIndex; leases?: LeaseManager; snapshotter?: OverlaySnapshotter } = {},
  ): CacheParts {
    const index = have.index ?? new CacheKeyIndex(path.join(root, 'cache'));
    const snapshotter = have.snapshotter ?? new OverlaySnapshotter(path.join(root, 'snapshots'));
    return {
      store: have.store ?? new LocalContentStore(path.join(root, 'content')),
      index,
      leases: have.leases ?? new LeaseManager(path.join(root, 'leases')),
      snapshots: snapshotSource(snapshotter, index, (layers) => (layers.length ? chainId(layers.map((l) => l.diffId as Digest)) : null)),
      cacheMounts: new CacheMounts(path.join(root, 'cache-mounts')),
    };
  }

  /** Tagged images are roots: their manifest, config and layers stay whatever the records say. */
  private static async pruneParts(parts: CacheParts, tags: TagStore, spec: PruneSpec): Promise<PruneResult> {
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

  /** Push an image built earlier (`-t` without `--push`) to its ref or another one. */
  async push(ref: string, opts: { as?: string; signal?: AbortSignal } = {}): Promise<Digest> {
    const desc = await this.tags.get(ref);
    if (!desc) throw new CodedError('NOT_FOUND', `no local image named ${ref}: build it with -t ${ref} first`);
    const image = await this.loadImage(desc);
    const { digest } = await exportToRegistry(this.registry, this.lazy, image, [opts.as ?? ref], opts.signal ? { signal: opts.signal } : {});
    return digest;
  }

  private async loadImage(desc: Descriptor): Promise<StoredImage> {
    const m = await readJson<{ config: Descriptor; layers: Descriptor[] }>(this.store, parseDigest(desc.digest), 4 << 20);
    return { manifest: desc, config: m.config, layers: m.layers };
  }

  get registryClient(): RegistryClient {
    return this.registry;
  }
}

/** Did the vertex add a layer over its root input? Unknown inputs fall back to the solver's view. */
function addedLayer(def: BuildDefinition, results: ReadonlyMap<Digest, VertexResult>, vertex: Digest): boolean {
  const r = results.get(vertex);
  if (!r) return false;
  const v = def.graph.get(vertex);
  if ((v.def.kind === 'exec' || v.def.kind === 'file') && v.def.hasRoot) {
    const parent = results.get(v.inputs[0]!);
    if (parent) return r.layers.length > parent.layers.length;
    return r.ownLayer;
  }
  return r.layers.length > 0;
}

/**
 * What a killed process leaves: runc containers, the views and rootfs mounts
 * of its steps under tmp/ (unmounted before anything is removed, and mount
 * points removed with rmdir only, so nothing can reach into a snapshot),
 * active snapshots, and half-written ingests.
 */
async function sweepLeftovers(executor: RuncExecutor, snapshotter: OverlaySnapshotter, store: LocalContentStore, tmpDir: string): Promise<void> {
  await executor.sweep();
  for (const m of await mountsUnder(tmpDir)) await unmountAt(m);
  for (const name of await readdir(tmpDir)) {
    if (name.startsWith('m-')) await rmdir(path.join(tmpDir, name)).catch(() => undefined);
  }
  await snapshotter.sweep();
  await store.sweepIngests();
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
