import PQueue from 'p-queue';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { mountAt, unmountAt } from '../../core/mounter.js';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { VertexState } from '../../core/build.js';
import { sha256, type Digest } from '../../core/digest.js';
import { BuildliteError, CodedError, isCancelled, withLocation } from '../../core/errors.js';
import { BUILD_LIMIT_DEFAULTS } from '../../core/limits.js';
import { DiskBudget } from './budget.js';
import { asStepError, LayerError } from './errors.js';
import { buildsOnInput0, type CopyAction, type Graph, type Vertex } from '../graph/index.js';
import { cacheKey } from './cache-key.js';
import { runExec } from './exec-op.js';
import { runFile } from './file-step.js';
import { gitAuth, runGitSource } from './git-op.js';
import { runHttpSource, runImageSource } from './source-op.js';
import { Materializer, snapshotName, type UnpackRun } from './materialize.js';
import { cacheMountResource, snapshotResource, type LayerRef } from '../../cache/index.js';
import { localDir, type ResolvedGit, type RunOptions, type SolveOptions, type SolverDeps, type VertexResult } from './types.js';

interface KeyInfo {
  readonly key: Digest;
  readonly preimage: unknown;
  /** Set for http sources, whose key depends on the fetched bytes (and the name the server gave them). */
  readonly fetched?: { path: string; digest: Digest; name?: string };
  /** Set for git sources: the commit their key stands for, fetched only on a miss. */
  readonly git?: ResolvedGit;
}

/**
 * Runs a graph: computes every vertex's cache key (no filesystem work beyond
 * hashing the context), then resolves the root lazily: a hit returns its layer
 * chain without touching its inputs; a miss resolves its inputs and runs.
 * Identical keys in flight (two stages, or two builds) share one run.
 */
export class Solver {
  private readonly inflight = new Map<string, Promise<VertexResult>>();
  /** One queue for sandboxes and file steps: they compete for the same disks and cores. */
  private readonly queue: PQueue;
  private readonly materializer: Materializer;

  constructor(private readonly deps: SolverDeps, opts: { parallelism?: number } = {}) {
    this.queue = new PQueue({ concurrency: opts.parallelism ?? availableParallelism() });
    this.materializer = new Materializer(deps);
  }

  /** `root`: the vertex to build, or several (one per platform of a multi-platform build), or null for none. */
  async solve(graph: Graph, root: Digest | null | readonly Digest[], opts: SolveOptions): Promise<Map<Digest, VertexResult>> {
    const abort = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, abort.signal]) : abort.signal;
    const limits = opts.limits ?? BUILD_LIMIT_DEFAULTS;
    const run = new SolveRun(this, graph, { ...opts, signal, limits, disk: opts.disk ?? new DiskBudget(limits.maxBuildDiskBytes) });
    try {
      await run.lookupAll();
      const roots = root === null ? [] : typeof root === 'string' ? [root] : root;
      await Promise.all(roots.map((r) => run.resolve(r)));
      return run.results;
    } catch (err) {
      abort.abort(err);
      // Let cancelled steps unwind (kill, unmount, remove snapshots) before the
      // caller hears of the failure, so nothing outlives a failed build.
      await run.settle();
      throw err;
    } finally {
      await run.removeFetched();
      if (opts.debugCache) await this.deps.index.putLastBuild(run.ranSteps()).catch(() => undefined);
    }
  }

  /**
   * A read-only view of a solved filesystem (a git build context), mounted on
   * a fresh directory under tmpDir until disposed. The lease, which must
   * outlive the view, gets the snapshots first, so GC leaves them alone.
   */
  async view(layers: readonly LayerRef[], lease: { add(resources: readonly string[]): Promise<void> }, run: Partial<UnpackRun> = {}): Promise<{ readonly dir: string } & AsyncDisposable> {
    await lease.add(chainResources(layers));
    const limits = run.limits ?? BUILD_LIMIT_DEFAULTS;
    const name = await this.materializer.ensure(layers, { signal: run.signal ?? new AbortController().signal, limits, disk: run.disk ?? new DiskBudget(limits.maxBuildDiskBytes) });
    const dir = await mkdtemp(path.join(this.deps.tmpDir, 'view-'));
    if (name !== null) {
      try {
        await mountAt((await this.deps.snapshotter.view(name))[0]!, dir);
      } catch (err) {
        await rmdir(dir);
        throw err;
      }
    }
    // rmdir, never rm -r: a failed unmount must not empty the snapshot.
    const dispose = async () => {
      if (name !== null) await unmountAt(dir);
      await rmdir(dir);
    };
    return { dir, [Symbol.asyncDispose]: dispose };
  }

  /**
   * @internal shared by SolveRun. `key` is a cache key and the limits the run
   * would get: two builds share a step only under the same limits, or one
   * team's tighter step timeout would kill another team's build.
   */
  shared(key: string, work: () => Promise<VertexResult>): Promise<VertexResult> {
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
  /** Layer chains found for keys during lookup (local index or imported), for history's empty_layer. */
  private readonly found = new Map<Digest, readonly LayerRef[]>();

  constructor(
    private readonly solver: Solver,
    private readonly graph: Graph,
    private readonly opts: RunOptions,
  ) {}

  /** The limits a shared run would get, as part of what makes two runs the same (see Solver.shared). */
  private get limitsKey(): string {
    return (this.limitsKeyCache ??= JSON.stringify(Object.entries(this.opts.limits).sort(([a], [b]) => (a < b ? -1 : 1))));
  }
  private limitsKeyCache: string | undefined;

  private get deps() {
    return this.solver.internals.deps;
  }

  /** ADD <url> downloads live only as long as the build: they can be large. */
  async removeFetched(): Promise<void> {
    const infos = await Promise.allSettled([...this.keys.values()]);
    for (const r of infos) {
      // Each fetch has a directory of its own under tmpDir; nothing is ever mounted there.
      if (r.status === 'fulfilled' && r.value.fetched) await rm(path.dirname(r.value.fetched.path), { recursive: true, force: true });
    }
  }

  /** Resolves once every step this run started has finished, whatever its outcome. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.resolving.values()]);
  }

  /** Steps that ran (missed) in this build, for `debug why-miss --last`. */
  ranSteps(): Array<{ key: Digest; name: string }> {
    const out: Array<{ key: Digest; name: string }> = [];
    for (const [d, r] of this.results) {
      const v = this.graph.get(d);
      if (r.cached || v.def.kind === 'local' || v.def.kind === 'http') continue;
      out.push({ key: r.key, name: this.graph.meta.get(d)?.name ?? v.def.kind });
    }
    return out;
  }

  keyOf(d: Digest): Promise<KeyInfo> {
    let p = this.keys.get(d);
    if (!p) {
      // Hashing the context or fetching an ADD URL can fail: say which line asked for it.
      const range = this.graph.meta.get(d)?.range;
      p = this.computeKey(this.graph.get(d)).catch((err: unknown) => {
        throw range ? withLocation(err, range) : err;
      });
      this.keys.set(d, p);
    }
    return p;
  }

  private async computeKey(v: Vertex): Promise<KeyInfo> {
    const inputKeys = await Promise.all(v.inputs.map(async (i) => (await this.keyOf(i)).key));
    const content: (Digest | null)[] = [];
    let fetched: KeyInfo['fetched'];
    let git: ResolvedGit | undefined;
    if (v.def.kind === 'file') {
      for (const action of v.def.actions) {
        content.push(action.op === 'copy' ? await this.contextSum(v, action) : null);
      }
    } else if (v.def.kind === 'http') {
      fetched = await runHttpSource(v.def, this.deps, this.opts);
      content.push(fetched.digest);
      if (fetched.name !== undefined) content.push(sha256(`filename\0${fetched.name}`));
    } else if (v.def.kind === 'git') {
      if (!this.deps.git) throw new CodedError('PERMISSION_DENIED', `git source ${v.def.remote}: fetching git repositories is not enabled on this builder`);
      git = await this.deps.git.resolve(v.def, gitAuth(this.opts), this.opts.signal);
      content.push(sha256(`commit\0${git.commit}`));
      // A kept .git checks the commit out under the ref it was found as (HEAD's branch, say).
      if (v.def.keepGitDir && git.ref !== undefined) content.push(sha256(`ref\0${git.ref}`));
    }
    const { key, preimage } = cacheKey(v.def, inputKeys, content);
    return { key, preimage, ...(fetched ? { fetched } : {}), ...(git ? { git } : {}) };
  }

  /** Content of the context files a COPY selects; other inputs are covered by their keys. */
  private async contextSum(v: Vertex, action: CopyAction): Promise<Digest | null> {
    const input = this.graph.get(v.inputs[action.src]!);
    if (input.def.kind !== 'local') return null;
    const dir = localDir(this.opts, input.def.name);
    if (!dir) throw new BuildliteErrorNoContext();
    return this.deps.hasher.checksumForCopy(dir, action.paths, {
      excludes: action.excludes,
      ignore: input.def.excludes,
      ...(action.parents ? { parents: true } : {}),
    });
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
    const event = (state: VertexState, error?: string) => this.vertexEvent(v, state, error);

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

    const result = await this.solver.shared(`${info.key} ${this.limitsKey}`, async () => {
      const inputs = await Promise.all(v.inputs.map((i) => this.resolve(i)));
      this.opts.signal.throwIfAborted();
      // No `signal` for p-queue: on abort it rejects add() at once while the task
      // still runs, and a failed build must not report before its steps unwound.
      return this.solver.internals.queue.add(
        async () => {
          this.opts.signal.throwIfAborted();
          event('started');
          try {
            const r = await this.execute(v, info, inputs);
            event('completed');
            return r;
          } catch (caught) {
            const err = asStepError(caught);
            this.attribute(err);
            if (meta?.range) withLocation(err, meta.range);
            if (isCancelled(err)) event('cancelled');
            else event('errored', err instanceof Error ? err.message : String(err));
            throw err;
          }
        },
      ) as Promise<VertexResult>;
    });
    this.results.set(v.digest, result);
    return result;
  }

  private async execute(v: Vertex, info: KeyInfo, inputs: VertexResult[]): Promise<VertexResult> {
    const ctx = { deps: this.deps, materializer: this.solver.internals.materializer, opts: this.opts, vertex: v, graph: this.graph };
    // The step may materialise every input's chain: hold those snapshots and blobs before it does.
    await this.lease([
      ...inputs.flatMap((r) => chainResources(r.layers)),
      ...(v.def.kind === 'exec' ? v.def.mounts.flatMap((m) => (m.type === 'cache' ? [cacheMountResource(m.id)] : [])) : []),
    ]);
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
      case 'git':
        layers = await runGitSource(v.def, info.git!, ctx);
        break;
      case 'merge':
        // Stacking is bookkeeping: the next step that needs the files applies the upper layers' blobs (Materializer).
        layers = inputs.flatMap((r) => r.layers);
        break;
      default:
        throw new Error(`vertex kind ${v.def.kind} cannot run`);
    }
    await this.lease([info.key, ...chainResources(layers)]);
    const now = Date.now();
    await this.deps.index.put(info.key, { layers: [...layers], createdAt: now, lastUsedAt: now });
    const base = v.def.kind === 'image' ? layers.length : (inputs[0]?.layers.length ?? 0);
    return { key: info.key, layers, cached: false, ownLayer: v.def.kind !== 'image' && layers.length > (buildsOnInput0(v.def) ? base : 0) };
  }

  private lease(resources: readonly string[]): Promise<void> {
    return resources.length && this.opts.lease ? this.opts.lease.add(resources) : Promise.resolve();
  }

  /** Layer count of a vertex's root input when known from the cache, for history's empty_layer. */
  private async rootInputLength(v: Vertex): Promise<number | undefined> {
    if (v.def.kind === 'image') return undefined;
    if (!buildsOnInput0(v.def)) return 0;
    const rootKey = await this.keyOf(v.inputs[0]!);
    return this.found.get(rootKey.key)?.length;
  }

  /**
   * Look every vertex up before running anything, in order, so a build reports
   * each cached step (as BuildKit does) even when a later hit means it is never
   * needed. Three passes keep the warm path cheap: find records, lease all they
   * name in one write, then check their blobs (after the lease, so a concurrent
   * GC cannot take a blob between the check and its use).
   *
   * `--no-cache-filter` forces a stage's steps to run and, like any rerun, every
   * step that depends on them: a rerun may produce other bytes, and a cached
   * dependent would silently keep the old ones.
   */
  async lookupAll(): Promise<void> {
    const forced = new Set<Digest>();
    const candidates: Array<{ v: Vertex; key: Digest; layers: readonly LayerRef[]; imported?: { createdAt?: number } }> = [];
    for (const v of this.graph.topoOrder()) {
      if (v.def.kind === 'local' || v.def.kind === 'http') continue;
      const info = await this.keyOf(v.digest);
      const meta = this.graph.meta.get(v.digest);
      if (this.opts.debugCache) {
        await this.deps.index.putPreimage(info.key, { name: meta?.name ?? v.def.kind, stage: meta?.stage, kind: v.def.kind, preimage: info.preimage });
      }
      const stage = meta?.stage;
      if (this.opts.noCache || (stage !== undefined && this.opts.noCacheStages.has(stage)) || v.inputs.some((i) => forced.has(i))) {
        forced.add(v.digest);
        continue;
      }
      const local = await this.deps.index.get(info.key);
      const imported = local ? undefined : this.opts.imported?.get(info.key);
      if (local) candidates.push({ v, key: info.key, layers: local.layers });
      else if (imported) candidates.push({ v, key: info.key, layers: imported.layers, imported });
    }
    await this.lease(candidates.flatMap((c) => [c.key, ...c.layers.map((l) => l.digest)]));
    // A record is only as good as its blobs: GC or a crash may have taken one. Each step's
    // record names its whole chain, so a blob is checked once, not once per step above it.
    const digests = [...new Set(candidates.flatMap((c) => c.layers.map((l) => l.digest)))];
    const present = new Set<Digest>();
    await Promise.all(digests.map(async (d) => (await this.deps.store.stat(d)) && present.add(d)));
    const good = new Set<Digest>();
    candidates.forEach((c) => {
      if (!c.layers.every((l) => present.has(l.digest))) return;
      this.found.set(c.key, c.layers);
      good.add(c.v.digest);
    });
    for (const v of this.graph.topoOrder()) {
      if (v.def.kind === 'local' || v.def.kind === 'http') continue;
      const info = await this.keyOf(v.digest);
      if (!good.has(v.digest)) {
        this.hits.set(v.digest, undefined);
        continue;
      }
      const c = candidates.find((x) => x.v === v)!;
      const parentLen = await this.rootInputLength(v);
      const hit: VertexResult = { key: info.key, layers: c.layers, cached: true, ownLayer: parentLen !== undefined && c.layers.length > parentLen };
      if (c.imported) {
        // Remembered locally so the next build hits without --cache-from once the blobs are here.
        const now = Date.now();
        await this.deps.index.put(info.key, { layers: [...c.layers], createdAt: c.imported.createdAt ?? now, lastUsedAt: now });
      } else {
        await this.deps.index.touch(info.key).catch(() => undefined);
      }
      this.hits.set(v.digest, hit);
      this.results.set(v.digest, hit);
      this.vertexEvent(v, 'cached');
    }
  }

  /**
   * A base layer that would not unpack belongs to its FROM, not to the step
   * that first needed it: name the image and point at the FROM line.
   */
  private attribute(err: unknown): void {
    if (!(err instanceof LayerError) || err.range) return;
    for (const [d, r] of this.results) {
      const v = this.graph.get(d);
      if (v.def.kind !== 'image' || !r.layers.some((l) => l.digest === err.layer)) continue;
      err.fromImage(v.def.ref);
      const range = this.graph.meta.get(d)?.range;
      if (range) withLocation(err, range);
      return;
    }
  }

  /** A vertex event, named and located from the graph's side map. */
  private vertexEvent(v: Vertex, state: VertexState, error?: string): void {
    const meta = this.graph.meta.get(v.digest);
    this.opts.emit({
      type: 'vertex', vertex: v.digest, name: meta?.name ?? v.def.kind, state, at: Date.now(),
      ...(meta?.range ? { range: meta.range } : {}),
      ...(meta?.stage ? { stage: meta.stage } : {}),
      ...(error ? { error } : {}),
    });
  }
}

/** What a step on top of `layers` holds: each layer blob and the snapshot of each prefix of the chain. */
function chainResources(layers: readonly LayerRef[]): string[] {
  const out: string[] = [];
  for (let i = 1; i <= layers.length; i++) {
    out.push(layers[i - 1]!.digest, snapshotResource(snapshotName(layers.slice(0, i))!));
  }
  return out;
}

class BuildliteErrorNoContext extends BuildliteError {
  readonly code = 'INVALID_ARGUMENT' as const;
  constructor() {
    super('this build copies from the context, but no context was given');
  }
}
