import { mkdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { BuildEvent, BuildEventBody, BuildRequest, BuildResult } from '../core/build.js';
import { parseDigest, type Digest } from '../core/digest.js';
import { CodedError, toWire } from '../core/errors.js';
import { EventQueue } from '../core/event-queue.js';
import { DEFAULT_PLATFORM, type Descriptor } from '../core/oci.js';
import { CacheKeyIndex, CacheMounts, LocalContentStore, readJson } from '../cache/index.js';
import { RegistryClient } from '../registry-client/index.js';
import { convertDockerfile } from './dockerfile/index.js';
import { RuncExecutor, type SandboxLimits } from './executor/index.js';
import type { BuildDefinition } from './graph/index.js';
import { buildImageConfig, exportLocalDir, exportOciLayoutTar, exportToRegistry, storeImage, TagStore, type StoredImage } from './image/index.js';
import { RegistryImages } from './image-source.js';
import { OverlaySnapshotter } from './snapshot/index.js';
import { ContextHasher, Solver, type VertexResult } from './solver/index.js';

export interface BuilderOptions {
  /** State directory: content store, cache index, snapshots, sandboxes. Made 0700. */
  readonly root: string;
  readonly insecureRegistries?: readonly string[];
  readonly caFile?: string;
  readonly limits?: SandboxLimits;
  /** Operator's half of the network.host grant; the build asks with `allow`. */
  readonly allowHostNetwork?: boolean;
  readonly parallelism?: number;
}

export interface BuildOptions {
  /** Secret values by id; they never enter events, keys or layers. */
  readonly secrets?: ReadonlyMap<string, Buffer>;
  readonly signal?: AbortSignal;
  readonly debugCache?: boolean;
}

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
  ) {}

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
    // A previous process may have died mid-step: reclaim its containers, mounts and active snapshots first.
    await executor.sweep();
    await snapshotter.sweep();
    const tmpDir = path.join(root, 'tmp');
    await mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const registry = new RegistryClient({
      ...(opts.insecureRegistries ? { insecureRegistries: [...opts.insecureRegistries] } : {}),
      ...(opts.caFile ? { caFile: opts.caFile } : {}),
    });
    const solver = new Solver(
      {
        store,
        index,
        snapshotter,
        executor,
        images: new RegistryImages(registry),
        hasher: new ContextHasher(path.join(root, 'statcache')),
        cacheMounts: new CacheMounts(path.join(root, 'cache-mounts')),
        tmpDir,
        ...(opts.limits ? { limits: opts.limits } : {}),
      },
      { parallelism: opts.parallelism ?? availableParallelism() },
    );
    return new Builder({ ...opts, root }, store, new TagStore(root), snapshotter, executor, solver, registry, index);
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
    });
    for (const w of def.warnings) emit({ type: 'warning', message: w.message, ...(w.range ? { range: w.range } : {}) });

    const results = await this.solver.solve(def.graph, def.root, {
      contextDir,
      secrets: opts.secrets ?? new Map(),
      noCache: req.noCache ?? false,
      noCacheStages: new Set(req.noCacheFilter ?? []),
      ...(req.sourceDateEpoch !== undefined ? { sourceDateEpoch: req.sourceDateEpoch } : {}),
      ...(opts.debugCache ? { debugCache: true } : {}),
      emit,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });

    const image = await this.assemble(def, results, req.sourceDateEpoch);
    const pushed = await this.export(req, image, emit, opts.signal);
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
    const config = buildImageConfig({
      platform: def.platform,
      config: def.config,
      diffIds: layers.map((l) => l.diffId),
      history,
      ...(sourceDateEpoch !== undefined ? { sourceDateEpoch } : {}),
    });
    return storeImage(this.store, config, layers);
  }

  private async export(req: BuildRequest, image: StoredImage, emit: (e: BuildEventBody) => void, signal?: AbortSignal): Promise<string[]> {
    const pushed: string[] = [];
    const onProgress = (id: string, current: number, total?: number) =>
      emit({ type: 'progress', id, action: 'push', current, ...(total !== undefined ? { total } : {}) });
    for (const out of req.outputs ?? []) {
      switch (out.type) {
        case 'registry':
          pushed.push(...(await exportToRegistry(this.registry, this.store, image, out.refs, { ...(signal ? { signal } : {}), onProgress })).pushed);
          await this.tags.set(out.refs, image.manifest);
          break;
        case 'image':
          await this.tags.set(out.refs, image.manifest);
          break;
        case 'oci':
          await exportOciLayoutTar(this.store, image, out.dest, out.refs?.[0], signal);
          break;
        case 'local':
          await exportLocalDir(this.store, image, out.dest, signal);
          break;
        case 'tar':
          throw new CodedError('INVALID_ARGUMENT', '--output type=tar is not supported yet; use type=oci or type=local');
      }
    }
    return pushed;
  }

  /** Push an image built earlier (`-t` without `--push`) to its ref or another one. */
  async push(ref: string, opts: { as?: string; signal?: AbortSignal } = {}): Promise<Digest> {
    const desc = await this.tags.get(ref);
    if (!desc) throw new CodedError('NOT_FOUND', `no local image named ${ref}: build it with -t ${ref} first`);
    const image = await this.loadImage(desc);
    const { digest } = await exportToRegistry(this.registry, this.store, image, [opts.as ?? ref], opts.signal ? { signal: opts.signal } : {});
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

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
