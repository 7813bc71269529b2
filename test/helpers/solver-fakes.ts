/**
 * Fakes for unit tests of the solver's scheduling: an executor whose steps
 * the test drives (they finish, fail, block until released, or wait for the
 * abort and unwind slowly), and a snapshotter whose snapshots are plain
 * directories handed out as bind mounts. Everything else the solver needs is
 * the real thing in a temp dir (content store, cache index, cache mounts):
 * cheap, and what the fakes must fit.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Mount } from '../../core/mount.js';
import { mountsUnder, unmountAt } from '../../core/mounter.js';
import { CacheKeyIndex, CacheMounts, LocalContentStore } from '../../cache/index.js';
import { ExecCancelledError, type ExecOptions, type ExecResult, type Executor, type ProcessSpec } from '../../builder/executor/index.js';
import type { CommitOptions, SnapshotInfo, Snapshotter } from '../../builder/snapshot/index.js';
import { ContextHasher, type SolverDeps } from '../../builder/solver/index.js';
import { BUILD_LIMIT_DEFAULTS } from '../../core/limits.js';

/** What the step named by its first argument does. */
export type StepBehaviour =
  | { readonly kind: 'ok'; readonly writes?: string }
  /** Exits non-zero, once the step named `after` (if any) has started. */
  | { readonly kind: 'fail'; readonly exitCode: number; readonly after?: string }
  /** Runs until the test calls `release(name)` (at once if it did already). */
  | { readonly kind: 'block' }
  /** Runs until the build aborts, then takes `unwindMs` to stop (a kill, a cleanup) and throws CANCELLED. */
  | { readonly kind: 'until-abort'; readonly unwindMs: number };

/** An executor that records each run and does what the test told the step to do. */
export class FakeExecutor implements Executor {
  /** Names of the steps whose run started, in order. */
  readonly started: string[] = [];
  /** Names of the steps whose run returned or threw. */
  readonly ended: string[] = [];
  running = 0;
  maxRunning = 0;
  private readonly behaviours = new Map<string, StepBehaviour>();
  private readonly released = new Set<string>();
  private readonly waiters: Array<() => void> = [];

  on(name: string, behaviour: StepBehaviour): this {
    this.behaviours.set(name, behaviour);
    return this;
  }

  /** Lets every run of `name`, blocked now or started later, finish successfully. */
  release(name: string): void {
    this.released.add(name);
    this.wake();
  }

  /** Resolves once `pred` holds; checked whenever a run starts or a step is released. */
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async run(proc: ProcessSpec, opts: ExecOptions): Promise<ExecResult> {
    const name = proc.args[0]!;
    const b = this.behaviours.get(name) ?? { kind: 'ok' };
    this.started.push(name);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.wake();
    try {
      return await this.behave(name, b, opts);
    } finally {
      this.running--;
      this.ended.push(name);
    }
  }

  private async behave(name: string, b: StepBehaviour, opts: ExecOptions): Promise<ExecResult> {
    switch (b.kind) {
      case 'ok':
        // The rootfs is the step's snapshot, bind-mounted: what is written here becomes its layer.
        if (b.writes !== undefined) await writeFile(path.join(opts.rootfs[0]!.source, name), b.writes);
        return result(0);
      case 'fail':
        if (b.after !== undefined) await this.until(() => this.started.includes(b.after!));
        return result(b.exitCode);
      case 'block':
        await this.until(() => this.released.has(name));
        return result(0);
      case 'until-abort': {
        const signal = opts.signal!;
        if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        await sleep(b.unwindMs);
        throw new ExecCancelledError(`step ${name} cancelled`);
      }
    }
  }
}

function result(exitCode: number): ExecResult {
  const { stepTimeoutMs, memoryBytes, cpus, pids } = BUILD_LIMIT_DEFAULTS;
  return { exitCode, timedOut: false, oomKilled: false, pidsLimited: false, limits: { stepTimeoutMs, memoryBytes, cpus, pids }, durationMs: 1 };
}

interface Snap {
  readonly dir: string;
  readonly parent: string | null;
  kind: 'active' | 'committed';
  unpackedBytes?: number;
}

/**
 * Snapshots as directories under `root`; a snapshot does not hold its
 * parent's files (the solver never reads them back in these tests).
 */
export class FakeSnapshotter implements Snapshotter {
  private readonly snaps = new Map<string, Snap>();

  constructor(private readonly root: string) {}

  /** Keys of active snapshots: a step that unwound leaves none. */
  active(): string[] {
    return [...this.snaps].flatMap(([k, s]) => (s.kind === 'active' ? [k] : []));
  }

  async prepare(key: string, parent: string | null): Promise<Mount[]> {
    if (this.snaps.has(key)) throw new Error(`snapshot ${key} exists`);
    if (parent !== null && this.snaps.get(parent)?.kind !== 'committed') throw new Error(`no committed parent ${parent}`);
    const dir = path.join(this.root, encodeURIComponent(key));
    await mkdir(dir, { recursive: true });
    this.snaps.set(key, { dir, parent, kind: 'active' });
    return this.mounts(key);
  }

  async view(name: string): Promise<Mount[]> {
    return [{ type: 'bind', source: this.get(name).dir, options: ['rbind', 'ro'] }];
  }

  async mounts(key: string): Promise<Mount[]> {
    return [{ type: 'bind', source: this.get(key).dir, options: ['rbind', 'rw'] }];
  }

  async commit(name: string, key: string, opts: CommitOptions = {}): Promise<void> {
    const s = this.get(key);
    if (s.kind !== 'active' || this.snaps.has(name)) throw new Error(`cannot commit ${key} as ${name}`);
    this.snaps.delete(key);
    this.snaps.set(name, { ...s, kind: 'committed', ...(opts.unpackedBytes !== undefined ? { unpackedBytes: opts.unpackedBytes } : {}) });
  }

  async remove(keyOrName: string): Promise<void> {
    const s = this.get(keyOrName);
    this.snaps.delete(keyOrName);
    await rm(s.dir, { recursive: true, force: true });
  }

  async stat(keyOrName: string): Promise<SnapshotInfo | undefined> {
    const s = this.snaps.get(keyOrName);
    if (!s) return undefined;
    return { name: keyOrName, parent: s.parent, kind: s.kind, createdAt: 0, ...(s.unpackedBytes !== undefined ? { unpackedBytes: s.unpackedBytes } : {}) };
  }

  async *list(): AsyncIterable<SnapshotInfo> {
    for (const k of [...this.snaps.keys()]) {
      const info = await this.stat(k);
      if (info) yield info;
    }
  }

  async usage(): Promise<{ size: number; inodes: number }> {
    return { size: 0, inodes: 0 };
  }

  private get(keyOrName: string): Snap {
    const s = this.snaps.get(keyOrName);
    if (!s) throw new Error(`no snapshot ${keyOrName}`);
    return s;
  }
}

/** A temp state dir with the solver's deps: the fakes above, the real stores. Disposing unmounts and removes it. */
export interface SolverFixture extends AsyncDisposable {
  readonly dir: string;
  readonly executor: FakeExecutor;
  readonly snapshotter: FakeSnapshotter;
  /** Deps over a cache index of its own (`index` names its directory under the fixture). */
  deps(index?: string): SolverDeps;
}

export async function solverFixture(): Promise<SolverFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-solver-unit-'));
  const executor = new FakeExecutor();
  const snapshotter = new FakeSnapshotter(path.join(dir, 'snapshots'));
  const store = new LocalContentStore(path.join(dir, 'content'));
  const tmpDir = path.join(dir, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  return {
    dir,
    executor,
    snapshotter,
    deps: (index = 'cache') => ({
      store,
      index: new CacheKeyIndex(path.join(dir, index)),
      snapshotter,
      executor,
      images: { pull: () => Promise.reject(new Error('no image pulls in these tests')) },
      hasher: new ContextHasher(path.join(dir, 'statcache')),
      cacheMounts: new CacheMounts(path.join(dir, 'cache-mounts')),
      tmpDir,
    }),
    async [Symbol.asyncDispose]() {
      // A failed test may leave a step's bind mount behind: never rm -r across one.
      for (const m of await mountsUnder(dir)) await unmountAt(m);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
