var __addDisposableResource = (this && this.__addDisposableResource) || function (env, value, async) {
    if (value !== null && value !== void 0) {
        if (typeof value !== "object" && typeof value !== "function") throw new TypeError("Object expected.");
        var dispose, inner;
        if (async) {
            if (!Symbol.asyncDispose) throw new TypeError("Symbol.asyncDispose is not defined.");
            dispose = value[Symbol.asyncDispose];
        }
        if (dispose === void 0) {
            if (!Symbol.dispose) throw new TypeError("Symbol.dispose is not defined.");
            dispose = value[Symbol.dispose];
            if (async) inner = dispose;
        }
        if (typeof dispose !== "function") throw new TypeError("Object not disposable.");
        if (inner) dispose = function() { try { inner.call(this); } catch (e) { return Promise.reject(e); } };
        env.stack.push({ value: value, dispose: dispose, async: async });
    }
    else if (async) {
        env.stack.push({ async: true });
    }
    return value;
};
var __disposeResources = (this && this.__disposeResources) || (function (SuppressedError) {
    return function (env) {
        function fail(e) {
            env.error = env.hasError ? new SuppressedError(e, env.error, "An error was suppressed during disposal.") : e;
            env.hasError = true;
        }
        var r, s = 0;
        function next() {
            while (r = env.stack.pop()) {
                try {
                    if (!r.async && s === 1) return s = 0, env.stack.push(r), Promise.resolve().then(next);
                    if (r.dispose) {
                        var result = r.dispose.call(r.value);
                        if (r.async) return s |= 2, Promise.resolve(result).then(next, function(e) { fail(e); return next(); });
                    }
                    else s |= 1;
                }
                catch (e) {
                    fail(e);
                }
            }
            if (s === 1) return env.hasError ? Promise.reject(env.error) : Promise.resolve();
            if (env.hasError) throw env.error;
        }
        return next();
    };
})(typeof SuppressedError === "function" ? SuppressedError : function (error, suppressed, message) {
    var e = new Error(message);
    return e.name = "SuppressedError", e.error = error, e.suppressed = suppressed, e;
});
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { parseDigest } from '../core/digest.js';
import { CodedError, toWire } from '../core/errors.js';
import { EventQueue } from '../core/event-queue.js';
import { DEFAULT_PLATFORM } from '../core/oci.js';
import { CacheKeyIndex, CacheMounts, diskUsage, explainMiss, exportCache, formatExplanation, importCache, LazyBlobStore, LeaseManager, LocalContentStore, parseBytes, parseDuration, parsePruneFilters, prune, readJson, snapshotSource, } from '../cache/index.js';
import { parseReference, RegistryClient } from '../registry-client/index.js';
import { convertDockerfile } from './dockerfile/index.js';
import { RuncExecutor } from './executor/index.js';
import { buildImageConfig, exportLocalDir, exportOciLayoutTar, exportRootfsTar, exportToRegistry, storeImage, TagStore } from './image/index.js';
import { RegistryImages } from './image-source.js';
import { PolicedHttpFetcher } from './http-fetch.js';
import { chainId } from './layers/index.js';
import { OverlaySnapshotter } from './snapshot/index.js';
import { ContextHasher, Solver } from './solver/index.js';
const LEASE_DEFAULTS = {
    /** A build's lease outlives a crashed process by at most this. */
    ttlMs: 10 * 60_000,
    /** A running build renews its lease this often. */
    renewMs: 60_000,
};
/**
 * The builder: one per state directory, shared by the builds it runs. `build`
 * takes a request and yields its events; the last event is `result` or `error`.
 * It knows nothing of queues, Redis or gRPC.
 */
export class Builder {
    opts;
    store;
    tags;
    snapshotter;
    executor;
    solver;
    registry;
    index;
    leases;
    lazy;
    constructor(opts, store, tags, snapshotter, executor, solver, registry, index, leases, 
    /** The store the solver and exporters read: local blobs plus those an imported cache can fetch. */
    lazy) {
        this.opts = opts;
        this.store = store;
        this.tags = tags;
        this.snapshotter = snapshotter;
        this.executor = executor;
        this.solver = solver;
        this.registry = registry;
        this.index = index;
        this.leases = leases;
        this.lazy = lazy;
    }
    static async open(opts) {
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
        // A previous process may have died mid-step: reclaim its containers, mounts and active snapshots first.
        await executor.sweep();
        await snapshotter.sweep();
        const tmpDir = path.join(root, 'tmp');
        await mkdir(tmpDir, { recursive: true, mode: 0o700 });
        const registry = new RegistryClient({
            ...(opts.insecureRegistries ? { insecureRegistries: [...opts.insecureRegistries] } : {}),
            ...(opts.caFile ? { caFile: opts.caFile } : {}),
        });
        const leases = new LeaseManager(path.join(root, 'leases'));
        await leases.sweep();
        const lazy = new LazyBlobStore(store);
        const solver = new Solver({
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
        }, { parallelism: opts.parallelism ?? availableParallelism() });
        return new Builder({ ...opts, root }, store, new TagStore(root), snapshotter, executor, solver, registry, index, leases, lazy);
    }
    build(req, opts = {}) {
        const queue = new EventQueue();
        let seq = 0;
        const emit = (e) => queue.push({ ...e, seq: ++seq });
        this.run(req, opts, emit)
            .then((result) => emit({ type: 'result', result }))
            .catch((err) => emit({ type: 'error', error: toWire(err) }))
            .finally(() => queue.end());
        return queue;
    }
    async run(req, opts, emit) {
        const env_1 = { stack: [], error: void 0, hasError: false };
        try {
            if (!('dir' in req.context))
                throw new CodedError('INVALID_ARGUMENT', 'an embedded builder needs a context directory');
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
            // `RUN --network=host` in the Dockerfile needs the build's grant too, not only the operator's.
            for (const v of def.graph.vertices.values()) {
                if (v.def.kind === 'exec' && v.def.network === 'host' && !(req.allow ?? []).includes('network.host')) {
                    throw new CodedError('PERMISSION_DENIED', 'RUN --network=host needs the network.host entitlement: pass --allow network.host');
                }
            }
            for (const w of def.warnings)
                emit({ type: 'warning', message: w.message, ...(w.range ? { range: w.range } : {}) });
            // Everything this build uses or makes is leased until it ends, so GC in any process leaves it alone.
            const lease = __addDisposableResource(env_1, await this.takeLease(), true);
            const imported = __addDisposableResource(env_1, await this.importCaches(req.cacheFrom ?? [], emit, opts.signal), true);
            const results = await this.solver.solve(def.graph, def.root, {
                lease,
                ...(imported.records.size ? { imported: { get: (k) => imported.records.get(k) } } : {}),
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
                if (kind === 'local' || kind === 'http')
                    continue;
                if (r.cached)
                    hits++;
                else
                    misses++;
            }
            return { imageDigest: image.manifest.digest, configDigest: image.config.digest, pushed, cache: { hits, misses } };
        }
        catch (e_1) {
            env_1.error = e_1;
            env_1.hasError = true;
        }
        finally {
            const result_1 = __disposeResources(env_1);
            if (result_1)
                await result_1;
        }
    }
    async assemble(def, results, sourceDateEpoch) {
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
    async export(req, image, emit, signal, mountFrom = new Map()) {
        const pushed = [];
        const onProgress = (id, current, total) => emit({ type: 'progress', id, action: 'push', current, ...(total !== undefined ? { total } : {}) });
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
    async takeLease() {
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
    async importCaches(specs, emit, signal) {
        const records = new Map();
        const mountFrom = new Map();
        const unregister = [];
        for (const spec of specs) {
            try {
                const c = await importCache(spec.type === 'registry' ? { type: 'registry', ref: spec.ref } : { type: 'local', dir: spec.dir }, this.registry, signal);
                for (const [k, l] of c.records)
                    if (!records.has(k))
                        records.set(k, l);
                unregister.push(this.lazy.register(c.blobs));
                if (c.registry)
                    mountFrom.set(c.registry.host, [...(mountFrom.get(c.registry.host) ?? []), c.registry.repository]);
            }
            catch (err) {
                signal?.throwIfAborted();
                emit({ type: 'warning', message: `--cache-from ignored: ${err instanceof Error ? err.message : String(err)}` });
            }
        }
        return {
            records,
            mountFrom,
            async [Symbol.asyncDispose]() {
                for (const u of unregister)
                    u();
            },
        };
    }
    /**
     * Layers this store knows only through an imported registry cache, pushed to
     * the same registry, are mounted from the cache repository: nothing is
     * downloaded. Anything else is fetched lazily by the push itself.
     */
    async mountFromCaches(image, refs, mountFrom, signal) {
        if (mountFrom.size === 0)
            return;
        for (const r of refs) {
            const ref = parseReference(r);
            const repos = mountFrom.get(ref.registry);
            if (!repos)
                continue;
            for (const l of image.layers) {
                if (await this.lazy.isLocal(l.digest))
                    continue;
                await this.registry.pushBlob(ref, l, this.lazy, { mountFrom: repos, ...(signal ? { signal } : {}) });
            }
        }
    }
    /** `--cache-to`: min exports the records of the final image's chain, max every step's. */
    async exportCaches(specs, def, results, image, emit, signal) {
        for (const spec of specs) {
            const finalLayers = new Set(image.layers.map((l) => l.digest));
            const records = new Map();
            for (const [d, r] of results) {
                const kind = def.graph.get(d).def.kind;
                if (kind === 'local' || kind === 'http')
                    continue;
                if ((spec.mode ?? 'min') === 'min' && !r.layers.every((l) => finalLayers.has(l.digest)))
                    continue;
                const createdAt = (await this.index.get(r.key))?.createdAt;
                records.set(r.key, { key: r.key, layers: r.layers, ...(createdAt !== undefined ? { createdAt } : {}) });
            }
            try {
                await exportCache(spec.type === 'registry' ? { type: 'registry', ref: spec.ref } : { type: 'local', dir: spec.dir }, [...records.values()], this.lazy, this.registry, signal ? { signal } : {});
            }
            catch (err) {
                if (!spec.ignoreError || signal?.aborted)
                    throw err;
                emit({ type: 'warning', message: `--cache-to failed (ignore-error=true): ${err instanceof Error ? err.message : String(err)}` });
            }
        }
    }
    /** Usage of this builder's state, by kind. */
    diskUsage() {
        return diskUsage(this.cacheParts());
    }
    /** Prune this builder's state; what running builds lease is never removed. */
    prune(spec = {}) {
        return Builder.pruneParts(this.cacheParts(), this.tags, spec);
    }
    /** What GC looks at: the stores, the index, leases, snapshots (as a PrunableSource) and cache mounts. */
    cacheParts() {
        return Builder.partsAt(this.opts.root, { store: this.store, index: this.index, leases: this.leases, snapshotter: this.snapshotter });
    }
    /** `buildlite du` without opening a builder (no sweep: a build may be running in another process). */
    static diskUsageAt(root) {
        return diskUsage(Builder.partsAt(path.resolve(root)));
    }
    /** `buildlite prune` without opening a builder; leases of builds in other processes are honoured. */
    static pruneAt(root, spec = {}) {
        const r = path.resolve(root);
        return Builder.pruneParts(Builder.partsAt(r), new TagStore(r), spec);
    }
    /**
     * `buildlite debug why-miss`: why each step of the last `--debug-cache` build
     * ran (`key` omitted), or why one key missed. Lines for people.
     */
    static async explainMissAt(root, key) {
        const index = new CacheKeyIndex(path.join(path.resolve(root), 'cache'));
        const keys = key !== undefined ? [{ key: parseDigest(key), name: key }] : await index.getLastBuild();
        if (keys.length === 0)
            return ['the last build kept no pre-images, or ran no step: rebuild with --debug-cache'];
        const lines = [];
        for (const k of keys) {
            const e = await explainMiss(index, k.key);
            lines.push(...(e ? formatExplanation(e) : [`${k.name}: no pre-image stored for ${k.key} (build with --debug-cache)`]), '');
        }
        return lines;
    }
    static partsAt(root, have = {}) {
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
    static async pruneParts(parts, tags, spec) {
        const protect = [];
        for (const m of await tags.roots()) {
            protect.push(m);
            try {
                const doc = await readJson(parts.store, m, 4 << 20);
                protect.push(doc.config.digest, ...doc.layers.map((l) => l.digest));
            }
            catch {
                // A tag whose manifest is gone protects nothing more.
            }
        }
        const size = (v) => (typeof v === 'string' ? parseBytes(v) : v);
        const dur = (v) => (typeof v === 'string' ? parseDuration(v) : v);
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
    async push(ref, opts = {}) {
        const desc = await this.tags.get(ref);
        if (!desc)
            throw new CodedError('NOT_FOUND', `no local image named ${ref}: build it with -t ${ref} first`);
        const image = await this.loadImage(desc);
        const { digest } = await exportToRegistry(this.registry, this.lazy, image, [opts.as ?? ref], opts.signal ? { signal: opts.signal } : {});
        return digest;
    }
    async loadImage(desc) {
        const m = await readJson(this.store, parseDigest(desc.digest), 4 << 20);
        return { manifest: desc, config: m.config, layers: m.layers };
    }
    get registryClient() {
        return this.registry;
    }
}
/** Did the vertex add a layer over its root input? Unknown inputs fall back to the solver's view. */
function addedLayer(def, results, vertex) {
    const r = results.get(vertex);
    if (!r)
        return false;
    const v = def.graph.get(vertex);
    if ((v.def.kind === 'exec' || v.def.kind === 'file') && v.def.hasRoot) {
        const parent = results.get(v.inputs[0]);
        if (parent)
            return r.layers.length > parent.layers.length;
        return r.ownLayer;
    }
    return r.layers.length > 0;
}
async function readOptional(file) {
    try {
        return await readFile(file, 'utf8');
    }
    catch (err) {
        if (err.code === 'ENOENT')
            return undefined;
        throw err;
    }
}
//# sourceMappingURL=builder.js.map