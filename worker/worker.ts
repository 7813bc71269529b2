import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Queue, WaitingError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import pino, { type Logger } from 'pino';
import { CodedError } from '../core/errors.js';
import { platformString, type Platform } from '../core/oci.js';
import { normalizePlatform } from '../core/platform.js';
import { Builder, EmulationProbe, type BuilderOptions } from '../builder/index.js';
import { diskUsage, startGcLoop, type GcLoop, type GcPolicy } from '../cache/index.js';
import { ClientSlots } from './client-slots.js';
import { openServiceStore, RedisStoreIndex, type ServiceStore } from '../store/index.js';
import { handleControl } from './control.js';
import { EVENT_WRITER_DEFAULTS, type EventWriterOptions } from './events.js';
import { timingOf } from './attempt.js';
import { finishBuild } from './finish-build.js';
import { Keys } from './redis-keys.js';
import { parseBuildRecord, type WorkerRecord } from './records.js';
import { SHARED_QUEUE, workerQueueName, type BuildJobData } from './jobs.js';
import type { ControlRequest } from './control-messages.js';
import type { SecretVault } from './secret-vault.js';
import type { ServiceMetrics } from './metrics.js';
import { processBuild, type ProcessorDeps, type RunningBuild } from './processor.js';
import { listWorkers, WorkerPresence } from './presence.js';
import { sweepWorkerState } from './sweep.js';

export interface BuildWorkerOptions {
  readonly redisUrl: string;
  /** State root of this worker's builder (store, cache, snapshots, sandboxes). */
  readonly root: string;
  /**
   * The store the API writes contexts to and this worker writes full step
   * logs to: the same directory (or volume) the API uses, or
   * `registry://HOST/REPO`. Default `<root>/contexts` (API and worker on one machine).
   */
  readonly contexts?: string;
  /** Continuous GC: a hard cap on this worker's cache (bytes, metadata included), enforced every `intervalMs` and after each build. */
  readonly gc?: GcPolicy & { readonly intervalMs?: number };
  readonly id?: string;
  readonly concurrency?: number;
  readonly prefix?: string;
  readonly lockDurationMs?: number;
  readonly stalledIntervalMs?: number;
  readonly maxStalledCount?: number;
  readonly heartbeatTtlMs?: number;
  readonly projectTtlS?: number;
  readonly events?: Partial<EventWriterOptions>;
  readonly builder?: Omit<BuilderOptions, 'root'>;
  readonly logger?: Logger;
  readonly metrics?: ServiceMetrics;
  /** Embedded mode: secret values handed over in memory by the API in this process. */
  readonly vault?: SecretVault;
  /** The platforms to offer (`--platforms`); default: every one this machine runs, natively or under emulation. */
  readonly platforms?: readonly Platform[];
}

/**
 * What the worker advertises for routing: the host's platform first, then
 * what QEMU runs here; an operator's `--platforms` narrows it, and naming one
 * this machine cannot run is an error at start, not a build failing later.
 */
async function offeredPlatforms(wanted: readonly Platform[] | undefined): Promise<string[]> {
  const probe = new EmulationProbe();
  const runnable = (await probe.runnable()).sort((a, b) => Number(a.emulated) - Number(b.emulated)).map((r) => platformString(r.platform));
  if (!wanted?.length) return runnable;
  const out: string[] = [];
  for (const p of wanted) {
    const r = await probe.runner(p);
    if (r.kind === 'unavailable') throw new CodedError('INVALID_ARGUMENT', `--platforms ${platformString(p)}: this machine cannot run it (${r.reason})`);
    out.push(platformString(normalizePlatform(p)));
  }
  return [...new Set(out)];
}

/** At most one cache walk per this long for the size ListWorkers shows. */
const CACHE_MEASURE_MS = 30_000;

/** The builds running in this process; each change is published with the worker's presence. */
class RunningBuilds extends Map<string, RunningBuild> {
  constructor(private readonly onChange: () => void) {
    super();
  }
  override set(id: string, b: RunningBuild): this {
    super.set(id, b);
    this.onChange();
    return this;
  }
  override delete(id: string): boolean {
    const had = super.delete(id);
    if (had) this.onChange();
    return had;
  }
}

/** How long a lost worker's loss stays noticed: long enough that its leftover record is not reported again. */
const LOST_MARKER_TTL_MS = 24 * 3600 * 1000;

export const WORKER_DEFAULTS = {
  // Two builds at once keeps a 2-core machine busy without runc steps starving each other.
  concurrency: 2,
  prefix: 'bl',
  // BullMQ's default is 30 s; 15 s halves how long a dead worker's job waits, and a lock
  // renewal (every lockDuration/2) still survives several seconds of event-loop stall.
  lockDurationMs: 15_000,
  stalledIntervalMs: 10_000,
  // One stall is a lost worker; a second one in a row still gets a retry before failing.
  maxStalledCount: 2,
  heartbeatTtlMs: 15_000,
  projectTtlS: 7 * 24 * 3600,
  // A minute between passes bounds the overshoot to one minute of builds; each build's end also runs a pass.
  gcIntervalMs: 60_000,
} as const;

/**
 * A build worker: BullMQ Workers on the shared queue and on this worker's own
 * queue (builds routed here for cache locality), sharing one concurrency
 * budget; one Builder for all its builds; cancel and control messages over
 * Redis pub/sub; and adoption of the own queue of a worker that died.
 */
export class BuildWorker {
  private readonly bull: Worker<BuildJobData>[] = [];
  private shared!: Worker<BuildJobData>;
  private sharedPaused = false;
  private activeOwn = 0;
  private activeShared = 0;
  private readonly adopting = new Map<string, Worker<BuildJobData>>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly id: string,
    private readonly opts: BuildWorkerOptions & typeof WORKER_DEFAULTS,
    private readonly keys: Keys,
    private readonly redis: Redis,
    private readonly sub: Redis,
    private readonly builder: Builder,
    private readonly presence: WorkerPresence,
    private readonly log: Logger,
    private readonly store: ServiceStore,
    /** Builds running here by id: cancel and lock loss reach them; the heartbeat lists them. */
    private readonly running: Map<string, RunningBuild>,
  ) {
    this.slots = new ClientSlots(redis, keys, opts.metrics);
  }

  /** Client concurrency quotas, shared by this worker's queues. */
  private readonly slots: ClientSlots;

  private gc: GcLoop | undefined;
  private readonly gcStop = new AbortController();

  static async start(options: BuildWorkerOptions): Promise<BuildWorker> {
    const opts = { ...WORKER_DEFAULTS, ...stripUndefined(options) } as BuildWorkerOptions & typeof WORKER_DEFAULTS;
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new CodedError('INVALID_OPTION', `concurrency must be a positive integer, got ${opts.concurrency}`);
    if (opts.gc && !(Number.isSafeInteger(opts.gc.keepStorageBytes) && opts.gc.keepStorageBytes >= 0)) throw new CodedError('INVALID_OPTION', `gc.keepStorageBytes must be a size in bytes, got ${opts.gc.keepStorageBytes}`);
    if (opts.gc?.intervalMs !== undefined && !(opts.gc.intervalMs >= 100)) throw new CodedError('INVALID_OPTION', `gc.intervalMs must be at least 100, got ${opts.gc.intervalMs}`);
    const id = opts.id ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(id)) throw new CodedError('INVALID_OPTION', `worker id "${id}": use letters, digits, '.', '_' and '-'`);
    const log = (opts.logger ?? pino({ name: 'buildlite-worker' })).child({ worker: id });
    const root = path.resolve(opts.root);
    // The builder's open() sweeps runc containers, mounts and active snapshots a crash left; then ours (below).
    const keys = new Keys(opts.prefix);
    // maxRetriesPerRequest null: commands wait through a Redis restart instead of failing builds.
    const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    const contexts = opts.contexts ?? path.join(root, 'contexts');
    // The step logs this worker stores are dated in the use index, so the API's retention can age them.
    const store = await openServiceStore(contexts, { tmpDir: path.join(root, 'tmp'), insecureRegistries: opts.builder?.insecureRegistries ?? [], useIndex: new RedisStoreIndex(redis, keys) });
    await store.init();
    const builder = await Builder.open({ ...(opts.builder ?? {}), root });
    // A limit the host cannot enforce (no swap accounting, no cpu or pids controller) is said once, at start.
    for (const w of builder.limitWarnings) log.warn({ limits: builder.limits }, `limit not enforced: ${w}`);
    // Before taking any job: an earlier incarnation's step still running here would run beside its retry.
    const reclaimed = builder.reclaimed;
    if (reclaimed.full) {
      const swept = await sweepWorkerState(root);
      log.info({ ...reclaimed, ...swept, store: store.location }, 'startup sweep done');
    } else {
      log.warn({ ...reclaimed, store: store.location }, 'startup sweep partial: other live processes use this root; only the steps of dead ones were reclaimed');
    }
    const sub = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
    sub.on('error', () => undefined);
    const running = new RunningBuilds(() => void presence.beat().catch(() => undefined));
    const platforms = await offeredPlatforms(opts.platforms);
    log.info({ platforms }, 'platforms offered');
    const presence = new WorkerPresence(redis, keys, id, opts.concurrency, opts.heartbeatTtlMs, platforms, () => undefined, () => [...running.keys()]);
    const w = new BuildWorker(id, { ...opts, root }, keys, redis, sub, builder, presence, log, store, running);
    await w.init();
    return w;
  }

  private deps(): ProcessorDeps {
    return {
      workerId: this.id,
      builder: this.builder,
      redis: this.redis,
      keys: this.keys,
      root: this.opts.root,
      store: this.store,
      events: { ...EVENT_WRITER_DEFAULTS, ...(this.opts.events ?? {}) },
      log: this.log,
      projectTtlS: this.opts.projectTtlS,
      slots: this.slots,
      ...(this.opts.metrics ? { metrics: this.opts.metrics } : {}),
      ...(this.opts.vault ? { vault: this.opts.vault } : {}),
    };
  }

  private makeWorker(queue: string, concurrency: number, kind: 'own' | 'shared' | 'adopted'): Worker<BuildJobData> {
    const deps = this.deps();
    const worker = new Worker<BuildJobData>(
      queue,
      async (job, token, signal) => {
        // The shared queue is paused once own-queue builds fill the budget, but a fetch already
        // blocked on Redis can still deliver a job: hand it back rather than run past the budget.
        if (kind === 'shared' && token && this.activeOwn + this.activeShared >= this.opts.concurrency) {
          await job.moveToWait(token);
          throw new WaitingError();
        }
        // Called first: it registers the build in `running` before its first await, so the beat
        // that count() sends lists the build (a worker lost from here on has it in its record).
        const build = processBuild(deps, job, token, signal, this.running);
        this.count(kind, +1);
        try {
          return await build;
        } finally {
          this.count(kind, -1);
          // Each build's end is when the cache grew: enforce the cap now, not at the next tick.
          if (this.gc) void this.gc.runNow().catch(() => undefined);
          else this.measureCache();
        }
      },
      {
        connection: { url: this.opts.redisUrl, maxRetriesPerRequest: null } as never,
        prefix: this.keys.bullPrefix,
        concurrency,
        lockDuration: this.opts.lockDurationMs,
        stalledInterval: this.opts.stalledIntervalMs,
        maxStalledCount: this.opts.maxStalledCount,
        name: this.id,
        removeOnComplete: { age: 24 * 3600, count: 1000 },
        removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
      },
    );
    worker.on('error', (err) => this.log.warn({ queue, err: err.message }, 'queue worker error'));
    // Lock renewal failed: another worker may already run this build. Stop ours, publish nothing.
    worker.on('lockRenewalFailed', (ids: string[]) => {
      for (const jobId of ids) this.running.get(jobId)?.stop('lock');
    });
    // Failed outside our processor (e.g. stalled too often): make sure watchers see the end.
    // BullMQ also emits 'failed' for an attempt it will retry (the job went to delayed):
    // only a job that is failed for good ends the build, else the retry would find it over.
    worker.on('failed', (job: Job<BuildJobData> | undefined, err: Error) => {
      if (!job || this.running.has(job.data.buildId)) return;
      void (async () => {
        if (!(await job.isFailed())) return;
        const rec = parseBuildRecord(await this.redis.hgetall(this.keys.build(job.data.buildId)));
        const error = { code: 'INTERNAL' as const, message: `the build's job failed: ${err.message}`, retryable: false };
        if (await finishBuild(this.redis, this.keys, { buildId: job.data.buildId, state: 'failed', body: { type: 'error', error }, seq: 1, extra: { error: JSON.stringify(error) } })) {
          this.opts.metrics?.buildEnded('failed', timingOf(rec));
          this.log.warn({ buildId: job.data.buildId, attempt: rec?.attempts, err: err.message }, 'build failed: its job failed outside a build attempt');
        }
      })().catch(() => undefined);
    });
    return worker;
  }

  private async init(): Promise<void> {
    await this.presence.start();
    await this.sub.subscribe(this.keys.cancelChannel, this.keys.controlChannel);
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.keys.cancelChannel) {
        this.running.get(message)?.stop('cancel');
        return;
      }
      let req: ControlRequest;
      try {
        req = JSON.parse(message) as ControlRequest;
      } catch {
        return;
      }
      void handleControl(this.builder, this.redis, this.id, req).catch((err: unknown) => this.log.warn({ err: String(err) }, 'control request failed'));
    });
    const own = this.makeWorker(workerQueueName(this.id), this.opts.concurrency, 'own');
    this.shared = this.makeWorker(SHARED_QUEUE, this.opts.concurrency, 'shared');
    this.bull.push(own, this.shared);
    await Promise.all(this.bull.map((w) => w.waitUntilReady()));
    if (this.opts.gc) {
      const { intervalMs, ...policy } = this.opts.gc;
      this.gc = startGcLoop(this.builder.cacheParts(), policy, intervalMs ?? this.opts.gcIntervalMs, this.gcStop.signal, (r, err) => {
        if (r) this.presence.setCacheBytes(r.usageAfter);
        if (err) this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'gc pass failed');
        else if (r && r.removed.length > 0) this.log.info({ freedBytes: r.freedBytes, removed: r.removed.length, usage: r.usageAfter, underBudget: r.underBudget }, 'gc pass');
      });
    }
    if (!this.gc) this.measureCache();
    this.adoptTimer = setInterval(() => void this.adoptDead().catch(() => undefined), this.opts.heartbeatTtlMs / 2);
    this.adoptTimer.unref();
    this.log.info({ concurrency: this.opts.concurrency, gc: this.opts.gc ?? null }, 'worker ready');
  }

  private adoptTimer: NodeJS.Timeout | undefined;
  private measuring: Promise<void> | undefined;
  private lastMeasured = 0;

  /**
   * Cache size for ListWorkers when no GC loop measures it: after builds, at
   * most every CACHE_MEASURE_MS (a walk of the cache is not free), in the background.
   */
  private measureCache(): void {
    if (this.measuring || Date.now() - this.lastMeasured < CACHE_MEASURE_MS) return;
    this.lastMeasured = Date.now();
    this.measuring = diskUsage(this.builder.cacheParts())
      .then((u) => this.presence.setCacheBytes(u.total), () => undefined)
      .finally(() => (this.measuring = undefined));
  }

  /** Keeps own + shared builds within the concurrency budget: the shared queue waits while own-queue builds use it. */
  private count(kind: 'own' | 'shared' | 'adopted', delta: number): void {
    if (kind === 'own') this.activeOwn += delta;
    else this.activeShared += delta;
    const total = this.activeOwn + this.activeShared;
    this.presence.setActive(total);
    if (this.closing) return;
    if (!this.sharedPaused && this.activeOwn > 0 && total >= this.opts.concurrency) {
      this.sharedPaused = true;
      void this.shared.pause(true);
    } else if (this.sharedPaused && total < this.opts.concurrency) {
      this.sharedPaused = false;
      void this.shared.resume();
    }
  }

  /**
   * A dead worker's own queue has no one taking from it, and its running job
   * no one to notice the stall. One live worker (whoever takes the adopt lock)
   * runs a BullMQ Worker on that queue until it is empty, which also runs the
   * stalled check that moves the dead worker's job back to wait.
   */
  private async adoptDead(): Promise<void> {
    if (this.closing) return;
    for (const w of await listWorkers(this.redis, this.keys)) {
      if (w.alive || w.id === this.id) continue;
      await this.noticeLost(w);
      const existing = this.adopting.get(w.id);
      const queueName = workerQueueName(w.id);
      const q = new Queue(queueName, { connection: this.redis as never, prefix: this.keys.bullPrefix });
      const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized').finally(() => q.close());
      const pending = Object.values(counts).reduce((a, n) => a + n, 0);
      if (pending === 0) {
        if (existing) {
          this.adopting.delete(w.id);
          await existing.close();
        }
        // Drained: forget the dead worker (its queue's keys are left for BullMQ's retention to age out).
        await this.redis.hdel(this.keys.workers, w.id);
        continue;
      }
      if (existing) continue;
      const got = await this.redis.set(this.keys.adoptLock(w.id), this.id, 'PX', this.opts.heartbeatTtlMs * 4, 'NX');
      if (got !== 'OK') continue;
      this.log.info({ dead: w.id, pending }, "adopting a dead worker's queue");
      this.adopting.set(w.id, this.makeWorker(queueName, 1, 'adopted'));
    }
  }

  /**
   * Logs, once for the whole service (whoever sets the marker first), that a
   * worker's heartbeat expired, and each build it was running: those builds
   * move to other workers once their job locks expire.
   */
  private async noticeLost(w: WorkerRecord): Promise<void> {
    const first = await this.redis.set(this.keys.workerLost(w.id), this.id, 'PX', LOST_MARKER_TTL_MS, 'NX');
    if (first !== 'OK') return;
    const builds = w.builds ?? [];
    const dead = { lostWorker: w.id, host: w.host, pid: w.pid, lastSeen: new Date(w.lastSeen).toISOString() };
    if (builds.length === 0) this.log.warn({ ...dead, builds: 0 }, 'worker lost (heartbeat expired)');
    for (const buildId of builds) this.log.warn({ ...dead, buildId }, 'worker lost (heartbeat expired) while running a build: it moves to another worker');
  }

  /** Shared-queue depth by state, for /metrics. */
  async queueDepth(): Promise<Record<string, number>> {
    const q = new Queue(SHARED_QUEUE, { connection: this.redis as never, prefix: this.keys.bullPrefix });
    try {
      return await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed');
    } finally {
      await q.close();
    }
  }

  /** Builds running in this process right now. */
  get activeBuilds(): number {
    return this.running.size;
  }

  /**
   * Drains: takes no new job, lets running builds finish for up to `graceMs`,
   * then hands the rest back to the queue (they restart elsewhere) and closes.
   */
  close(graceMs = 30_000): Promise<void> {
    this.closing ??= (async () => {
      if (this.adoptTimer) clearInterval(this.adoptTimer);
      await Promise.all([...this.bull, ...this.adopting.values()].map((w) => w.pause(true).catch(() => undefined)));
      const deadline = Date.now() + graceMs;
      while (this.running.size > 0 && Date.now() < deadline) await sleep(100);
      for (const b of this.running.values()) b.stop('drain');
      while (this.running.size > 0) await sleep(50);
      await Promise.all([...this.bull, ...this.adopting.values()].map((w) => w.close().catch(() => undefined)));
      await this.slots.close();
      this.gcStop.abort();
      await this.gc?.stopped;
      await this.measuring;
      await this.builder.close().catch(() => undefined);
      await this.store.close().catch(() => undefined);
      await this.presence.stop().catch(() => undefined);
      this.sub.disconnect();
      await this.redis.quit().catch(() => this.redis.disconnect());
      this.log.info('worker stopped');
    })();
    return this.closing;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
