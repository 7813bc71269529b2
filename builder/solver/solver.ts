import PQueue from 'p-queue';
import { availableParallelism } from 'node:os';
import type { Digest } from '../../core/digest.js';
import { BuildliteError, isCancelled, withLocation } from '../../core/errors.js';
import type { Graph, Vertex } from '../graph/index.js';
import { cacheKey } from './cache-key.js';
import { runExec } from './exec-op.js';
import { runFile } from './file-step.js';
import { runHttpSource, runImageSource } from './source-op.js';
import { Materializer } from './materialize.js';
import type { SolveOptions, SolverDeps, VertexResult } from './types.js';

interface KeyInfo {
  readonly key: Digest;
  readonly preimage: unknown;
  /** Set for http sources, whose key depends on the fetched bytes. */
  readonly fetched?: { path: string; digest: Digest };
}

/**
 * Runs a graph: computes every vertex's cache key (no filesystem work beyond
 * hashing the context), then resolves the root lazily: a hit returns its layer
 * chain without touching its inputs; a miss resolves its inputs and runs.
 * Identical keys in flight (two stages, or two builds) share one run.
 */
export class Solver {
  private readonly inflight = new Map<Digest, Promise<VertexResult>>();
  /** One queue for sandboxes and file steps: they compete for the same disks and cores. */
  private readonly queue: PQueue;
  private readonly materializer: Materializer;

  constructor(private readonly deps: SolverDeps, opts: { parallelism?: number } = {}) {
    this.queue = new PQueue({ concurrency: opts.parallelism ?? availableParallelism() });
    this.materializer = new Materializer(deps);
  }

  async solve(graph: Graph, root: Digest | null, opts: SolveOptions): Promise<Map<Digest, VertexResult>> {
    const abort = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, abort.signal]) : abort.signal;
    const run = new SolveRun(this, graph, { ...opts, signal });
    try {
      await run.lookupAll();
      if (root !== null) await run.resolve(root);
      return run.results;
    } catch (err) {
      abort.abort(err);
      throw err;
    }
  }

  /** @internal shared by SolveRun */
  shared(key: Digest, work: () => Promise<VertexResult>): Promise<VertexResult> {
    let p = this.inflight.get(key);
    if (!p) {
      p = work().finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /** @internal */
  get internals() {
    return { deps: this.deps, queue: this.queue, materializer: this.materializer };
  }
}

class SolveRun {
  readonly results = new Map<Digest, VertexResult>();
  private readonly keys = new Map<Digest, Promise<KeyInfo>>();
  private readonly resolving = new Map<Digest, Promise<VertexResult>>();
  private readonly hits = new Map<Digest, VertexResult | undefined>();

  constructor(
    private readonly solver: Solver,
    private readonly graph: Graph,
    private readonly opts: SolveOptions & { signal: AbortSignal },
  ) {}

  private get deps() {
    return this.solver.internals.deps;
  }

  keyOf(d: Digest): Promise<KeyInfo> {
    let p = this.keys.get(d);
    if (!p) {
      p = this.computeKey(this.graph.get(d));
      this.keys.set(d, p);
    }
    return p;
  }

  private async computeKey(v: Vertex): Promise<KeyInfo> {
    const inputKeys = await Promise.all(v.inputs.map(async (i) => (await this.keyOf(i)).key));
    const content: (Digest | null)[] = [];
    let fetched: KeyInfo['fetched'];
    if (v.def.kind === 'file') {
      for (const action of v.def.actions) {
        content.push(action.op === 'copy' ? await this.contextSum(v, action.src, action.paths, action.excludes) : null);
      }
    } else if (v.def.kind === 'http') {
      fetched = await runHttpSource(v.def, this.deps, this.opts.signal);
      content.push(fetched.digest);
    }
    const { key, preimage } = cacheKey(v.def, inputKeys, content);
    return { key, preimage, ...(fetched ? { fetched } : {}) };
  }

  /** Content of the context files a COPY selects; other inputs are covered by their keys. */
  private async contextSum(v: Vertex, src: number, paths: readonly string[], excludes: readonly string[]): Promise<Digest | null> {
    const input = this.graph.get(v.inputs[src]!);
    if (input.def.kind !== 'local') return null;
    if (!this.opts.contextDir) throw new BuildliteErrorNoContext();
    return this.deps.hasher.checksumForCopy(this.opts.contextDir, paths, { excludes, ignore: input.def.excludes });
  }

  resolve(d: Digest): Promise<VertexResult> {
    let p = this.resolving.get(d);
    if (!p) {
      p = this.resolveVertex(this.graph.get(d));
      this.resolving.set(d, p);
    }
    return p;
  }

  private async resolveVertex(v: Vertex): Promise<VertexResult> {
    const info = await this.keyOf(v.digest);
    const meta = this.graph.meta.get(v.digest);
    const event = (state: 'started' | 'cached' | 'completed' | 'errored', error?: string) =>
      this.opts.emit({
        type: 'vertex', vertex: v.digest, name: meta?.name ?? v.def.kind, state, at: Date.now(),
        ...(meta?.range ? { range: meta.range } : {}),
        ...(meta?.stage ? { stage: meta.stage } : {}),
        ...(error ? { error } : {}),
      });

    if (v.def.kind === 'local') {
      const r: VertexResult = { key: info.key, layers: [], cached: true, ownLayer: false };
      this.results.set(v.digest, r);
      return r;
    }
    if (v.def.kind === 'http') {
      const r: VertexResult = { key: info.key, layers: [], cached: false, ownLayer: false, file: info.fetched! };
      this.results.set(v.digest, r);
      return r;
    }

    const hit = this.hits.get(v.digest);
    if (hit) return hit;

    const result = await this.solver.shared(info.key, async () => {
      const inputs = await Promise.all(v.inputs.map((i) => this.resolve(i)));
      this.opts.signal.throwIfAborted();
      return this.solver.internals.queue.add(
        async () => {
          event('started');
          try {
            const r = await this.execute(v, info, inputs);
            if (this.opts.debugCache) await this.deps.index.putPreimage(info.key, info.preimage);
            event('completed');
            return r;
          } catch (err) {
            if (meta?.range) withLocation(err, meta.range);
            event('errored', isCancelled(err) ? 'cancelled' : err instanceof Error ? err.message : String(err));
            throw err;
          }
        },
        { signal: this.opts.signal },
      ) as Promise<VertexResult>;
    });
    this.results.set(v.digest, result);
    return result;
  }

  private async execute(v: Vertex, info: KeyInfo, inputs: VertexResult[]): Promise<VertexResult> {
    const ctx = { deps: this.deps, materializer: this.solver.internals.materializer, opts: this.opts, vertex: v, graph: this.graph };
    let layers;
    switch (v.def.kind) {
      case 'image':
        layers = await runImageSource(v.def, ctx);
        break;
      case 'exec':
        layers = await runExec(v.def, inputs, ctx);
        break;
      case 'file':
        layers = await runFile(v.def, inputs, ctx);
        break;
      default:
        throw new Error(`vertex kind ${v.def.kind} cannot run`);
    }
    const now = Date.now();
    await this.deps.index.put(info.key, { layers: [...layers], createdAt: now, lastUsedAt: now });
    const base = v.def.kind === 'image' ? layers.length : (inputs[0]?.layers.length ?? 0);
    const hasRoot = v.def.kind === 'exec' || v.def.kind === 'file' ? v.def.hasRoot : false;
    return { key: info.key, layers, cached: false, ownLayer: v.def.kind !== 'image' && layers.length > (hasRoot ? base : 0) };
  }

  private async lookup(v: Vertex, key: Digest): Promise<VertexResult | undefined> {
    if (this.opts.noCache) return undefined;
    const stage = this.graph.meta.get(v.digest)?.stage;
    if (stage !== undefined && this.opts.noCacheStages.has(stage)) return undefined;
    const rec = await this.deps.index.get(key);
    if (!rec) return undefined;
    // A record is only as good as its blobs: GC or a crash may have taken one.
    for (const l of rec.layers) if (!(await this.deps.store.stat(l.digest))) return undefined;
    await this.deps.index.touch(key).catch(() => undefined);
    const parentLen = await this.rootInputLength(v);
    return { key, layers: rec.layers, cached: true, ownLayer: parentLen !== undefined && rec.layers.length > parentLen };
  }

  /** Layer count of a vertex's root input when known from the cache, for history's empty_layer. */
  private async rootInputLength(v: Vertex): Promise<number | undefined> {
    if (v.def.kind === 'image') return undefined;
    if (!(v.def.kind === 'exec' || v.def.kind === 'file') || !v.def.hasRoot) return 0;
    const rootKey = await this.keyOf(v.inputs[0]!);
    const rec = await this.deps.index.get(rootKey.key);
    return rec?.layers.length;
  }

  /**
   * Look every vertex up before running anything, in order, so a build reports
   * each cached step (as BuildKit does) even when a later hit means it is never needed.
   */
  async lookupAll(): Promise<void> {
    for (const v of this.graph.topoOrder()) {
      if (v.def.kind === 'local' || v.def.kind === 'http') continue;
      const info = await this.keyOf(v.digest);
      const hit = await this.lookup(v, info.key);
      this.hits.set(v.digest, hit);
      if (!hit) continue;
      this.results.set(v.digest, hit);
      const meta = this.graph.meta.get(v.digest);
      this.opts.emit({
        type: 'vertex', vertex: v.digest, name: meta?.name ?? v.def.kind, state: 'cached', at: Date.now(),
        ...(meta?.range ? { range: meta.range } : {}),
        ...(meta?.stage ? { stage: meta.stage } : {}),
      });
    }
  }
}

class BuildliteErrorNoContext extends BuildliteError {
  readonly code = 'INVALID_ARGUMENT' as const;
  constructor() {
    super('this build copies from the context, but no context was given');
  }
}
