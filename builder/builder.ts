import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { BuildEvent, BuildEventBody, BuildRequest, BuildResult } from '../core/build.js';
import { parseDigest, type Digest } from '../core/digest.js';
import { CodedError, toWire } from '../core/errors.js';
import { checkLimits, mergeLimits, type BuildLimits } from '../core/limits.js';
import { EventQueue } from '../core/event-queue.js';
import { isIndexMediaType, platformString, type Descriptor, type ImageIndex } from '../core/oci.js';
import { targetPlatforms } from '../core/platform.js';
import { checkNetworkRequest } from '../core/request-rules.js';
import { makeSpreadDir } from '../core/spread-dir.js';
import {
  CacheKeyIndex,
  CacheMounts,
  diskUsage,
  LazyBlobStore,
  LeaseManager,
  LocalContentStore,
  readJson,
  type CacheParts,
  type DiskUsage,
  type Lease,
  type PruneResult,
} from '../cache/index.js';
import { RegistryClient } from '../registry-client/index.js';
import { checkFailure, convertDockerfile, type ParsedDockerfile } from './dockerfile/index.js';
import { stepLimitsOf, type RuncExecutor } from './executor/index.js';
import { buildsOnInput0, type BuildDefinition } from './graph/index.js';
import {
  buildImageConfig,
  exportLocalDir,
  exportOciLayoutTar,
  exportRootfsTar,
  exportToRegistry,
  imagesOf,
  loadBuilt,
  storeImage,
  storeIndex,
  TagStore,
  topDescriptor,
  type BuiltImage,
  type PlatformImage,
  type StoredImage,
} from './image/index.js';
import { planPlatforms } from './platform-plan.js';
import { RegistryImages } from './image-source.js';
import { FileBlobHomes } from './blob-homes.js';
import { prepareNamedContexts } from './named-contexts.js';
import { layoutFetcher } from './oci-layout.js';
import { claimRoot, rootParts, type ReclaimReport } from './reclaim.js';
import type { RootUse } from './root-users.js';
import { exportCaches, importCaches, mountFromCaches, type CacheIoDeps } from './cache-io.js';
import { explainMissAt, partsAt, pruneParts, type PruneSpec } from './maintenance.js';
import { PolicedHttpFetcher, type HttpPolicy } from './http-fetch.js';
import { GitSource } from './git-source.js';
import { openRemoteContext, type RemoteContext, type RemoteContextOptions } from './remote-context.js';
import { checkRequestReferences } from './request-refs.js';
import { ParseCache } from './parse-cache.js';
import { checkEmulation, EmulationProbe } from './emulation.js';
import { parseReference } from '../core/reference.js';
import type { NetTimeouts } from '../core/net-faults.js';
import type { OverlaySnapshotter } from './snapshot/index.js';
import { checkGraphGrants, checkSshAgents, ContextHasher, Solver, type VertexResult } from './solver/index.js';
import { checkDockerfileSize, checkImageSize, limitsOfBuild, withBuildClock } from './build-limits.js';

export interface BuilderOptions {
  /** State directory: content store, cache index, snapshots, sandboxes. Made 0700. */
  readonly root: string;
  readonly insecureRegistries?: readonly string[];
  readonly caFile?: string;
  /**
   * This builder's limits (a worker's flags, an embedded build's), over
   * BUILD_LIMIT_DEFAULTS: the ceiling of every build it runs, which a
   * request's `limits` may lower but never raise. Checked at open.
   */
  readonly limits?: Partial<BuildLimits>;
  /** no_new_privs in every RUN step (default off, as in Docker and BuildKit: setuid tools work). */
  readonly noNewPrivileges?: boolean;
  /** Operator's half of the network.host grant; the build asks with `allow`. */
  readonly allowHostNetwork?: boolean;
  /** Operator's half of the security.insecure grant (RUN --security=insecure; builder/executor/insecure.ts). */
  readonly allowSecurityInsecure?: boolean;
  readonly parallelism?: number;
  /**
   * Network policy for `ADD <url>` (docs/security.md T7). Default strict in every
   * mode: loopback, link-local, private and other non-public addresses are
   * refused unless `allowPrivate` (the user's explicit opt-in) or listed in
   * `allowNetworks` (an operator's allow-list).
   */
  readonly httpPolicy?: HttpPolicy;
  /**
   * How long a registry request or an `ADD <url>` fetch may stall: connecting,
   * waiting for response headers, idle mid-body (defaults 10 s, 30 s, 60 s:
   * core/net-faults.ts). A stall is retried with backoff like a reset.
   * `httpPolicy.timeouts`, when given, wins for URL fetches.
   */
  readonly timeouts?: Partial<NetTimeouts>;
  /**
   * Names the code this process runs (the CLI passes its bundle's content
   * hash): Dockerfile parses are kept across processes under it. Without
   * one, every build parses its Dockerfile anew.
   */
  readonly codeId?: string;
}

export interface BuildOptions {
  /** Secret values by id; they never enter events, keys or layers. */
  readonly secrets?: ReadonlyMap<string, Buffer>;
  /** ssh agent sockets on this machine by id (`--ssh`): forwarded into RUN --mount=type=ssh and used by git over ssh. */
  readonly ssh?: ReadonlyMap<string, string>;
  readonly signal?: AbortSignal;
  readonly debugCache?: boolean;
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
    private readonly solver: Solver,
    private readonly registry: RegistryClient,
    readonly index: CacheKeyIndex,
    readonly leases: LeaseManager,
    /** The store the solver and exporters read: local blobs plus those an imported cache can fetch. */
    private readonly lazy: LazyBlobStore,
    private readonly use: RootUse,
    private readonly executor: RuncExecutor,
    /** What opening reclaimed of what dead processes had left on the root. */
    readonly reclaimed: ReclaimReport,
    /** The ceiling of every build (BuilderOptions.limits over the defaults). */
    readonly limits: BuildLimits,
    /** Where pulled and pushed blobs live in registries, for the mounts of later pushes. */
    private readonly blobHomes: FileBlobHomes,
    private readonly parses: ParseCache,
  ) {}

  /**
   * One line per limit of this builder that the host's cgroups cannot
   * enforce (no swap accounting, no cpu or pids controller), for the caller
   * to report once at start; empty when every limit holds.
   */
  get limitWarnings(): string[] {
    return this.executor.unenforced(stepLimitsOf(this.limits));
  }

  /**
   * Finish the executor's background cleanup, then stop using the state root
   * (a process that exits without closing is noticed by the next one anyway).
   */
  async close(): Promise<void> {
    try {
      await this.executor.close();
      await this.blobHomes.flush();
      // The snapshots this process committed, on disk before it lets go of the root (snapshot/durability.ts).
      await this.snapshotter.flush();
    } finally {
      await this.use.release();
    }
  }

  static async open(opts: BuilderOptions): Promise<Builder> {
    const root = path.resolve(opts.root);
    checkLimits(opts.limits, 'limits');
    const limits = mergeLimits(opts.limits);
    await mkdir(root, { recursive: true, mode: 0o700 });
    const index = new CacheKeyIndex(path.join(root, 'cache'));
    const parts = rootParts(root, {
      limits: stepLimitsOf(limits),
      allowHostNetwork: opts.allowHostNetwork ?? false,
      allowSecurityInsecure: opts.allowSecurityInsecure ?? false,
      noNewPrivileges: opts.noNewPrivileges ?? false,
    });
    const { store, snapshotter, executor, tmpDir } = parts;
    const leases = new LeaseManager(path.join(root, 'leases'));
    // A previous process may have died mid-step: reclaim what it left before running anything.
    // The steps' dir, the claim and the leases of dead builds are apart: set up at the same time.
    const [made, claimed, swept] = await Promise.allSettled([makeSpreadDir(tmpDir), claimRoot(root, parts), leases.sweep()]);
    if (claimed.status === 'rejected') throw claimed.reason;
    const { use, report } = claimed.value;
    const failed = [made, swept].find((r) => r.status === 'rejected');
    if (failed) {
      await use.release();
      throw failed.reason;
    }
    const blobHomes = new FileBlobHomes(path.join(root, 'blob-homes'));
    const registry = new RegistryClient({
      blobHomes,
      ...(opts.insecureRegistries ? { insecureRegistries: [...opts.insecureRegistries] } : {}),
      ...(opts.caFile ? { caFile: opts.caFile } : {}),
      ...(opts.timeouts ? { timeouts: opts.timeouts } : {}),
    });
    const lazy = new LazyBlobStore(store);
    const solver = new Solver(
      {
        store: lazy,
        index,
        snapshotter,
        executor,
        images: layoutFetcher(new RegistryImages(registry, store)),
        http: new PolicedHttpFetcher({ ...opts.httpPolicy, timeouts: opts.httpPolicy?.timeouts ?? opts.timeouts ?? {} }),
        // Git remotes pass the same address policy as ADD <url>.
        git: new GitSource({ ...(opts.httpPolicy ? { policy: opts.httpPolicy } : {}), tmpDir }),
        allowHostNetwork: opts.allowHostNetwork ?? false,
        allowSecurityInsecure: opts.allowSecurityInsecure ?? false,
        hasher: new ContextHasher(path.join(root, 'statcache')),
        cacheMounts: new CacheMounts(path.join(root, 'cache-mounts')),
        tmpDir,
      },
      { parallelism: opts.parallelism ?? availableParallelism() },
    );
    const parses = new ParseCache(path.join(root, 'parse-cache'), opts.codeId);
    return new Builder({ ...opts, root }, store, new TagStore(root), snapshotter, solver, registry, index, leases, lazy, use, executor, report, limits, blobHomes, parses);
  }

  build(req: BuildRequest, opts: BuildOptions = {}): AsyncIterable<BuildEvent> {
    const queue = new EventQueue<BuildEvent>();
    let seq = 0;
    const emit = (e: BuildEventBody) => queue.push({ ...e, seq: ++seq } as BuildEvent);
    // The build reports only once its steps' containers are gone too (the executor deletes them in the background).
    const settled = (p: Promise<BuildResult>) => p.finally(() => this.executor.drain());
    settled(this.run(req, opts, emit))
      .then((result) => emit({ type: 'result', result }))
      .catch((err: unknown) => emit({ type: 'error', error: toWire(err) }))
      .finally(() => queue.end());
    return queue;
  }

  /** The build under its limits: this builder's, cut by the request's, and the whole-build clock. */
  private async run(req: BuildRequest, opts: BuildOptions, emit: (e: BuildEventBody) => void): Promise<BuildResult> {
    const limits = limitsOfBuild(req, this.limits, this.executor, emit);
    return withBuildClock(limits, opts.signal, (signal) => this.runLimited(req, { ...opts, signal }, emit, limits));
  }

  private async runLimited(req: BuildRequest, opts: BuildOptions, emit: (e: BuildEventBody) => void, limits: BuildLimits): Promise<BuildResult> {
    if (!('dir' in req.context)) throw new CodedError('INVALID_ARGUMENT', 'an embedded builder needs a context directory');
    checkDockerfileSize(req, limits);
    const contextDir = path.resolve(req.context.dir);
    checkRequestReferences(req);
    checkNetworkRequest(req);
    const images = new RegistryImages(this.registry, this.store);
    const dockerignore = req.dockerignore ?? (await readOptional(path.join(contextDir, '.dockerignore')));
    // The Dockerfile once per target platform (bases resolve per platform), then one graph where what they share is one vertex.
    // Parsed once, after the first platform's named contexts, as each platform's conversion did before.
    const fileName = req.dockerfileName ?? 'Dockerfile';
    let parsing: Promise<ParsedDockerfile> | undefined;
    const converted = await Promise.all(
      targetPlatforms(req.platforms).map(async (platform) => {
        const named = await prepareNamedContexts(req.namedContexts ?? {}, { store: this.store, base: images, platform });
        const parsed = await (parsing ??= this.parses.get(req.dockerfile, fileName));
        const def = await convertDockerfile({
          dockerfile: req.dockerfile,
          fileName,
          parsed,
          buildArgs: { ...(req.buildArgs ?? {}) },
          ...(req.target ? { target: req.target } : {}),
          platform,
          resolver: named.resolver,
          ...(named.specs.size ? { namedContexts: named.specs } : {}),
          ...(dockerignore !== undefined ? { dockerignore } : {}),
          ...(req.labels ? { labels: { ...req.labels } } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(req.network && req.network !== 'default' ? { defaultNetwork: req.network } : {}),
        });
        return { platform, def, named };
      }),
    );
    const plan = planPlatforms(converted);
    // Local named contexts are directories, the same for every platform.
    const named = converted[0]!.named;
    checkGraphGrants(plan.graph, {
      operatorAllowsHostNetwork: this.opts.allowHostNetwork ?? false,
      operatorAllowsInsecure: this.opts.allowSecurityInsecure ?? false,
      allow: req.allow ?? [],
    });
    checkSshAgents(plan.graph, opts.ssh ?? new Map());
    // A RUN this machine cannot run (no QEMU for its platform) fails the build now, not after the steps before it.
    await checkEmulation(plan.graph, new EmulationProbe());
    for (const w of plan.warnings) {
      emit({ type: 'warning', message: w.message, ...(w.range ? { range: w.range } : {}), ...(w.rule ? { rule: w.rule } : {}), ...(w.url ? { url: w.url } : {}) });
    }
    // `# check=error=true`: the checks fail the build once they are all reported, before any step runs.
    const failedChecks = checkFailure(plan.warnings);
    if (failedChecks) throw failedChecks;

    // Everything this build uses or makes is leased until it ends, so GC in any process leaves it alone.
    await using lease = await this.takeLease();
    await using imported = await importCaches(this.cacheIo, req.cacheFrom ?? [], emit, opts.signal);

    const results = await this.solver.solve(plan.graph, plan.roots, {
      lease,
      ...(imported.records.size ? { imported: { get: (k: Digest) => imported.records.get(k) } } : {}),
      contextDir,
      ...(named.localDirs.size ? { localDirs: named.localDirs } : {}),
      secrets: opts.secrets ?? new Map(),
      ...(opts.ssh ? { ssh: opts.ssh } : {}),
      noCache: req.noCache ?? false,
      noCacheStages: new Set(req.noCacheFilter ?? []),
      ...(req.sourceDateEpoch !== undefined ? { sourceDateEpoch: req.sourceDateEpoch } : {}),
      ...(opts.debugCache ? { debugCache: true } : {}),
      ...(req.allow ? { allow: req.allow } : {}),
      emit,
      ...(opts.signal ? { signal: opts.signal } : {}),
      limits,
    });

    const made: PlatformImage[] = [];
    for (const { platform, def } of plan.platforms) made.push({ platform, image: await this.assemble(def, results, limits, req.sourceDateEpoch) });
    // One platform is a plain manifest, as before platforms; several are an index.
    const built: BuiltImage = made.length === 1 ? { kind: 'image', image: made[0]!.image } : await storeIndex(this.store, made);
    await lease.add([topDescriptor(built).digest, ...made.flatMap(({ image }) => [image.manifest.digest, image.config.digest])]);
    const pushed = await this.export(req, built, emit, opts.signal, imported.mountFrom);
    const allLayers = { layers: made.flatMap(({ image }) => image.layers) };
    await exportCaches(this.cacheIo, req.cacheTo ?? [], plan.graph, results, allLayers, emit, opts.signal);
    let hits = 0;
    let misses = 0;
    for (const [d, r] of results) {
      const kind = plan.graph.get(d).def.kind;
      if (kind === 'local' || kind === 'http') continue;
      if (r.cached) hits++;
      else misses++;
    }
    const top = topDescriptor(built);
    return {
      imageDigest: top.digest,
      ...(built.kind === 'image' ? { configDigest: built.image.config.digest } : {}),
      ...(built.kind === 'index'
        ? { platforms: made.map(({ platform, image }) => ({ platform: platformString(platform), imageDigest: image.manifest.digest, configDigest: image.config.digest })) }
        : {}),
      pushed,
      cache: { hits, misses },
    };
  }

  private async assemble(def: BuildDefinition, results: ReadonlyMap<Digest, VertexResult>, limits: BuildLimits, sourceDateEpoch?: number): Promise<StoredImage> {
    const layers = def.root ? (results.get(def.root)?.layers ?? []) : [];
    await checkImageSize(this.snapshotter, layers, limits);
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
    built: BuiltImage,
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
          for (const { image } of imagesOf(built)) await mountFromCaches(this.cacheIo, image, out.refs, mountFrom, signal);
          pushed.push(...(await exportToRegistry(this.registry, this.lazy, built, out.refs, { ...(signal ? { signal } : {}), onProgress })).pushed);
          await this.tags.set(out.refs.map(parseReference), topDescriptor(built));
          break;
        case 'image':
          await this.tags.set(out.refs.map(parseReference), topDescriptor(built));
          break;
        case 'oci':
          await exportOciLayoutTar(this.lazy, built, out.dest, out.refs?.[0], signal);
          break;
        case 'local':
          await exportLocalDir(this.lazy, built, out.dest, signal);
          break;
        case 'tar':
          await exportRootfsTar(this.lazy, built, out.dest, { tmpDir: path.join(this.opts.root, 'tmp'), ...(req.sourceDateEpoch !== undefined ? { sourceDateEpoch: req.sourceDateEpoch } : {}), ...(signal ? { signal } : {}) });
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
   * A build context named by a URL (a git repository, or a tarball or a
   * Dockerfile over http), fetched by this builder under its URL policy, as a
   * directory to build from; dispose it once the build is over.
   */
  openContext(url: string, opts: RemoteContextOptions = {}): Promise<RemoteContext> {
    const deps = this.solver.internals.deps;
    return openRemoteContext({ solver: this.solver, ...(deps.http ? { http: deps.http } : {}), tmpDir: deps.tmpDir, limits: this.limits, takeLease: () => this.takeLease() }, url, opts);
  }

  /** Usage of this builder's state, by kind. */
  diskUsage(): Promise<DiskUsage> {
    return diskUsage(this.cacheParts());
  }

  /** Prune this builder's state; what running builds lease is never removed. */
  prune(spec: PruneSpec = {}): Promise<PruneResult> {
    return pruneParts(this.cacheParts(), this.tags, spec);
  }

  /** What GC looks at: the stores, the index, leases, snapshots (as a PrunableSource) and cache mounts. */
  cacheParts(): CacheParts {
    return partsAt(this.opts.root, { store: this.store, index: this.index, leases: this.leases, snapshotter: this.snapshotter });
  }

  /** `buildlite du` without opening a builder; like any command on the root, it first reclaims what dead processes left. */
  static async diskUsageAt(root: string): Promise<DiskUsage> {
    const r = path.resolve(root);
    await using _claim = await claimAt(r);
    return diskUsage(partsAt(r));
  }

  /** `buildlite prune` without opening a builder, after the same reclaim as du; leases of builds in other processes are honoured. */
  static async pruneAt(root: string, spec: PruneSpec = {}): Promise<PruneResult> {
    const r = path.resolve(root);
    await using _claim = await claimAt(r);
    return pruneParts(partsAt(r), new TagStore(r), spec);
  }

  /** `buildlite debug why-miss`: lines for people (see maintenance.ts). */
  static explainMissAt(root: string, key?: string): Promise<string[]> {
    return explainMissAt(root, key);
  }

  /** Push an image built earlier (`-t` without `--push`) to its ref or another one. */
  async push(ref: string, opts: { as?: string; signal?: AbortSignal } = {}): Promise<Digest> {
    // Both names are checked before anything is read or sent (and a password in either is never echoed).
    const name = parseReference(ref);
    if (opts.as !== undefined) parseReference(opts.as);
    const desc = await this.tags.get(name);
    if (!desc) throw new CodedError('NOT_FOUND', `no local image named ${ref}: build it with -t ${ref} first`);
    const { digest } = await exportToRegistry(this.registry, this.lazy, await loadBuilt(this.store, desc), [opts.as ?? ref], opts.signal ? { signal: opts.signal } : {});
    return digest;
  }

  private get cacheIo(): CacheIoDeps {
    return { registry: this.registry, lazy: this.lazy, index: this.index };
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
  if (buildsOnInput0(v.def)) {
    const parent = results.get(v.inputs[0]!);
    if (parent) return r.layers.length > parent.layers.length;
    return r.ownLayer;
  }
  return r.layers.length > 0;
}

/** Use of an existing root for a maintenance command, after reclaiming what dead processes left; a missing root is not created. */
async function claimAt(root: string): Promise<AsyncDisposable | undefined> {
  if (!existsSync(root)) return undefined;
  return (await claimRoot(root, rootParts(root), { snapshotSweep: 'always' })).use;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
