import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { BuildEvent, BuildEventBody } from '../core/build.js';
import { isDigest, type Digest } from '../core/digest.js';
import { platformString } from '../core/oci.js';
import { BuildliteError, CodedError } from '../core/errors.js';
import type { ClientQuota } from '../core/limits.js';
import { BUILD_JOB, namedContextDigests, SHARED_QUEUE, workerQueueName, type BuildJobData, type QueuedContext, type QueuedRequest } from '../worker/jobs.js';
import { EVENT_FIELD, seqOfStreamId, streamId } from '../worker/event-stream.js';
import { finishBuild } from '../worker/finish-build.js';
import { Keys } from '../worker/redis-keys.js';
import { parseBuildRecord, type BuildRecord, type WorkerRecord } from '../worker/records.js';
import { TERMINAL_STATES, type BuildState } from '../worker/build-states.js';
import type { ControlReply, ControlRequest } from '../worker/control-messages.js';
import type { SecretVault } from '../worker/secret-vault.js';
import type { StepLogRef } from '../worker/step-log-ref.js';
import { admitBuild, checkSubmitRate, unadmitBuild } from './quota.js';
import { routeByPlatform } from './platform-routing.js';

export interface ProducerOptions {
  readonly redisUrl: string;
  readonly prefix?: string;
  /** Attempts per build for infrastructure failures (BullMQ retries with exponential backoff). */
  readonly attempts?: number;
  readonly backoffMs?: number;
  /** The embedded worker's vault: the only way a build with secrets can run. */
  readonly vault?: SecretVault;
}

export const PRODUCER_DEFAULTS: { prefix: string; attempts: number; backoffMs: number } = {
  prefix: 'bl',
  // A registry outage of a few seconds is common; three tries over ~7 s ride it out.
  attempts: 3,
  backoffMs: 1000,
};

/** How long a Watch blocks on Redis before it checks the build's record again. */
const WATCH_BLOCK_MS = 2000;
const CONTROL_WAIT_MS = 10_000;

/**
 * The API's side of Redis: enqueues build jobs (references only), keeps the
 * build records, reads event streams for Watch, and sends cancel and control
 * messages to workers. Commands fail fast while Redis is away (no offline
 * queue), so a client gets UNAVAILABLE instead of a hung Submit.
 */
export class Producer {
  readonly keys: Keys;
  private readonly queues = new Map<string, Queue<BuildJobData>>();
  private readonly opts: ProducerOptions & typeof PRODUCER_DEFAULTS;

  /**
   * Reads (Get, List, Watch's record checks) ride out a short Redis restart on
   * their own connection, which queues commands while reconnecting; writes
   * (Submit, Cancel) fail fast on the main one.
   */
  private readonly reader: Redis;

  private constructor(
    private readonly redis: Redis,
    opts: ProducerOptions,
  ) {
    this.opts = { ...PRODUCER_DEFAULTS, ...opts };
    this.keys = new Keys(this.opts.prefix);
    this.reader = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: 3 });
    this.reader.on('error', () => undefined);
  }

  static async connect(opts: ProducerOptions): Promise<Producer> {
    const redis = new Redis(opts.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
    redis.on('error', () => undefined);
    await redis.connect();
    return new Producer(redis, opts);
  }

  private queue(name: string): Queue<BuildJobData> {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue<BuildJobData>(name, { connection: this.redis as never, prefix: this.keys.bullPrefix });
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  /** The fail-fast connection (store retention and its use index: a pass during an outage is skipped, not queued). */
  get connection(): Redis {
    return this.redis;
  }

  async ping(): Promise<boolean> {
    return (await this.redis.ping().catch(() => '')) === 'PONG';
  }

  /**
   * Queues a build. Routing: a build with secrets goes to the embedded worker
   * that holds them; else a build of a project goes to the worker that built
   * it last if that worker is alive and has a free slot; else to the shared queue.
   * With a quota, the build is admitted into its client's queued-or-running
   * set first (refused there under policy `refuse`), and its job carries the
   * concurrency limit that workers hold it to.
   */
  async submit(client: string, req: Omit<QueuedRequest, 'context'>, context: QueuedContext, secrets: ReadonlyMap<string, Buffer>, project?: string, quota?: ClientQuota): Promise<string> {
    const buildId = randomUUID();
    const proj = project ?? defaultProject(req, context);
    // Before the quota takes a slot: a build no worker can run is refused with nothing to undo.
    const byPlatform = secrets.size > 0 ? undefined : await this.platformQueue(req, proj).catch((err: unknown) => { throw err instanceof BuildliteError ? err : unavailable(err); });
    if (quota) await admitBuild(this.redis, this.keys, client, quota, buildId).catch((err: unknown) => { throw unavailable(err); });
    let queue = SHARED_QUEUE;
    if (secrets.size > 0) {
      if (!this.opts.vault) {
        throw new CodedError('INVALID_ARGUMENT', 'this server cannot take secrets: secret values are only kept in memory, which needs a worker in the API process (buildlite serve --embedded-worker)');
      }
      queue = workerQueueName(this.opts.vault.holderId);
      this.opts.vault.put(buildId, secrets);
    } else {
      queue = byPlatform ?? (await this.localityQueue(proj)) ?? SHARED_QUEUE;
    }
    const data: BuildJobData = {
      buildId,
      client,
      project: proj,
      request: { ...req, context },
      ...(secrets.size > 0 && this.opts.vault ? { secretsHolder: this.opts.vault.holderId } : {}),
      ...(quota ? { quota: { maxConcurrentBuilds: quota.maxConcurrentBuilds } } : {}),
    };
    const now = Date.now();
    try {
      await this.redis
        .multi()
        // `context`: store retention keeps the uploaded context of every queued or running build (a URL context has none).
        .hset(this.keys.build(buildId), { buildId, client, state: 'queued', project: proj, queue, createdAt: String(now), attempts: '0', ...('digest' in context ? { context: context.digest } : {}), ...namedContextsField(req) })
        .zadd(this.keys.clientBuilds(client), now, buildId)
        .zadd(this.keys.allBuilds, now, buildId)
        .exec();
      await this.queue(queue).add(BUILD_JOB, data, {
        jobId: buildId,
        attempts: this.opts.attempts,
        backoff: { type: 'exponential', delay: this.opts.backoffMs },
        removeOnComplete: { age: 24 * 3600, count: 1000 },
        removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
      });
    } catch (err) {
      this.opts.vault?.drop(buildId);
      if (quota) await unadmitBuild(this.redis, this.keys, client, buildId).catch(() => undefined);
      throw unavailable(err);
    }
    return buildId;
  }

  /**
   * At the start of a submit, before any upload: counts it in the client's
   * rate window (refused past it) and, under policy `refuse`, checks that the
   * client has room for one more build (checked again, atomically, at `submit`).
   */
  async checkQuota(client: string, quota: ClientQuota): Promise<void> {
    try {
      await checkSubmitRate(this.redis, this.keys, client, quota);
      if (quota.overQuota === 'refuse') await admitBuild(this.redis, this.keys, client, quota);
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** Counts a submit refused by a limit or quota, in Redis (for buildlite_builds_limited_total). */
  async countLimited(reason: string): Promise<void> {
    await this.redis.hincrby(this.keys.limitedTotals, reason, 1);
  }

  /**
   * Builds of the whole service refused or ended by each limit, and the
   * number that waited for their client's quota (metrics; Redis counts them).
   */
  async limitTotals(): Promise<{ limited: Record<string, number>; quotaWaits: number }> {
    const [h, waits] = await Promise.all([this.reader.hgetall(this.keys.limitedTotals), this.reader.get(this.keys.quotaWaitTotal)]);
    return { limited: Object.fromEntries(Object.entries(h).map(([k, n]) => [k, Number(n)])), quotaWaits: Number(waits ?? 0) };
  }

  /** The own queue of a worker offering the build's platforms, when not every live worker does (platform-routing.ts). */
  private async platformQueue(req: Omit<QueuedRequest, 'context'>, project: string): Promise<string | undefined> {
    const wanted = (req.platforms ?? []).map(platformString);
    if (wanted.length === 0) return undefined;
    const [all, projectWorker] = await Promise.all([this.redis.hgetall(this.keys.workers), this.redis.get(this.keys.project(project))]);
    const live: WorkerRecord[] = [];
    for (const [id, json] of Object.entries(all)) {
      if (await this.redis.exists(this.keys.workerAlive(id))) live.push(JSON.parse(json) as WorkerRecord);
    }
    const route = routeByPlatform(live, wanted, projectWorker ?? undefined);
    return route.kind === 'worker' ? workerQueueName(route.id) : undefined;
  }

  private async localityQueue(project: string): Promise<string | undefined> {
    const wid = await this.redis.get(this.keys.project(project));
    if (!wid) return undefined;
    const [alive, json] = await Promise.all([this.redis.exists(this.keys.workerAlive(wid)), this.redis.hget(this.keys.workers, wid)]);
    if (!alive || !json) return undefined;
    const w = JSON.parse(json) as WorkerRecord;
    return w.active < w.concurrency ? workerQueueName(wid) : undefined;
  }

  async get(buildId: string): Promise<BuildRecord | undefined> {
    return parseBuildRecord(await this.reader.hgetall(this.keys.build(buildId)).catch((err: unknown) => { throw unavailable(err); }));
  }

  async list(client: string | undefined, state: BuildState | undefined, limit: number): Promise<BuildRecord[]> {
    const ids = await this.reader.zrevrange(client ? this.keys.clientBuilds(client) : this.keys.allBuilds, 0, 4999);
    const out: BuildRecord[] = [];
    for (const id of ids) {
      const rec = await this.get(id);
      if (!rec) continue;
      if (state && rec.state !== state) continue;
      out.push(rec);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Asks the build to stop: a queued job is removed here, a running one is stopped by its worker. */
  async cancel(rec: BuildRecord): Promise<void> {
    if (TERMINAL_STATES.has(rec.state)) return;
    await this.redis.hset(this.keys.build(rec.buildId), 'cancelRequested', '1');
    await this.redis.publish(this.keys.cancelChannel, rec.buildId);
    const job = await this.queue(rec.queue).getJob(rec.buildId);
    const state = await job?.getState();
    if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized')) {
      const removed = await job.remove().then(() => true, () => false);
      if (removed) {
        const error = { code: 'CANCELLED' as const, message: 'the build was cancelled before it started', retryable: false };
        await finishBuild(this.redis, this.keys, { buildId: rec.buildId, state: 'cancelled', body: { type: 'error', error }, seq: 1, extra: { error: JSON.stringify(error) } });
        this.opts.vault?.drop(rec.buildId);
      }
    }
  }

  /**
   * Events with seq > fromSeq, in order, until the terminal event. Each watch
   * has its own connection (XREAD BLOCK holds it). A Redis restart is waited
   * out; a build whose record vanished ends the watch with NOT_FOUND.
   */
  async *watch(buildId: string, fromSeq: number, signal: AbortSignal): AsyncGenerator<BuildEvent> {
    const conn = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: 1, lazyConnect: true });
    conn.on('error', () => undefined);
    const onAbort = () => conn.disconnect();
    signal.addEventListener('abort', onAbort, { once: true });
    let last = fromSeq;
    try {
      await conn.connect().catch(() => undefined);
      for (let finalRead = false; !signal.aborted; ) {
        let entries: Array<[string, string[]]> = [];
        try {
          const key = this.keys.events(buildId);
          const res = (finalRead
            ? await conn.xread('COUNT', 500, 'STREAMS', key, streamId(last))
            : await conn.xread('COUNT', 500, 'BLOCK', WATCH_BLOCK_MS, 'STREAMS', key, streamId(last))) as Array<[string, Array<[string, string[]]>]> | null;
          entries = res?.[0]?.[1] ?? [];
        } catch {
          if (signal.aborted) return;
          await sleep(250);
          continue;
        }
        for (const [id, fields] of entries) {
          const seq = seqOfStreamId(id);
          const json = fields[fields.indexOf(EVENT_FIELD) + 1];
          if (json === undefined) continue;
          const body = JSON.parse(json) as BuildEventBody;
          last = seq;
          yield { ...body, seq } as BuildEvent;
          if (body.type === 'result' || body.type === 'error') return;
        }
        if (entries.length > 0) continue;
        if (finalRead) return;
        // Nothing new: is the build over (then one last non-blocking read) or gone?
        const rec = await this.get(buildId).catch(() => 'unknown' as const);
        if (rec === undefined) throw new CodedError('NOT_FOUND', `build ${buildId} no longer exists`);
        if (rec !== 'unknown' && TERMINAL_STATES.has(rec.state)) finalRead = true;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      conn.disconnect();
    }
  }

  /** The stored full logs of a build's steps: vertex → blob (written by the worker as the build ends). */
  async stepLogs(buildId: string): Promise<Record<string, StepLogRef>> {
    const h = await this.reader.hgetall(this.keys.logs(buildId)).catch((err: unknown) => {
      throw unavailable(err);
    });
    const out: Record<string, StepLogRef> = {};
    for (const [vertex, json] of Object.entries(h)) {
      try {
        const ref = JSON.parse(json) as { digest?: unknown; size?: unknown };
        if (isDigest(ref.digest) && typeof ref.size === 'number' && Number.isSafeInteger(ref.size)) out[vertex] = { digest: ref.digest, size: ref.size };
      } catch {
        // A corrupt entry is a missing log, not a failed call.
      }
    }
    return out;
  }

  /**
   * Builds of the whole service that ended, by state (metrics). Counted in
   * Redis as each build ends, so every API process reports the same totals
   * and no restart of any process loses a count.
   */
  async buildTotals(): Promise<Record<string, number>> {
    const h = await this.reader.hgetall(this.keys.buildTotals);
    return Object.fromEntries(Object.entries(h).filter(([state]) => TERMINAL_STATES.has(state as BuildState)).map(([state, n]) => [state, Number(n)]));
  }

  /** Jobs of the shared queue by state (metrics). */
  async depth(): Promise<Record<string, number>> {
    return this.queue(SHARED_QUEUE).getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed');
  }

  async workers(): Promise<Array<WorkerRecord & { alive: boolean }>> {
    const all = await this.reader.hgetall(this.keys.workers);
    const out: Array<WorkerRecord & { alive: boolean }> = [];
    for (const [id, json] of Object.entries(all)) {
      try {
        out.push({ ...(JSON.parse(json) as WorkerRecord), alive: (await this.reader.exists(this.keys.workerAlive(id))) === 1 });
      } catch {
        // skip a corrupt record
      }
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Broadcasts a control request and gathers one reply per live worker (or what came within the wait). */
  async control(req: ControlRequest extends infer C ? (C extends ControlRequest ? Omit<C, 'replyKey'> : never) : never): Promise<ControlReply[]> {
    const expected = (await this.workers()).filter((w) => w.alive).length;
    if (expected === 0) return [];
    const replyKey = `${this.keys.prefix}:reply:${randomBytes(12).toString('hex')}`;
    const conn = this.redis.duplicate({ enableOfflineQueue: true });
    conn.on('error', () => undefined);
    try {
      await this.redis.publish(this.keys.controlChannel, JSON.stringify({ ...req, replyKey }));
      const replies: ControlReply[] = [];
      const deadline = Date.now() + CONTROL_WAIT_MS;
      while (replies.length < expected && Date.now() < deadline) {
        const r = await conn.blpop(replyKey, Math.max(1, Math.ceil((deadline - Date.now()) / 1000)));
        if (r) replies.push(JSON.parse(r[1]) as ControlReply);
      }
      return replies;
    } finally {
      conn.disconnect();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    this.reader.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** `namedContexts`: the stored contexts the request's named contexts use, for store retention (absent when none). */
function namedContextsField(req: Omit<QueuedRequest, 'context'>): { namedContexts?: string } {
  const digests = namedContextDigests(req);
  return digests.length ? { namedContexts: digests.join(' ') } : {};
}

/** Cache locality key: the first pushed repository, else the context digest (or URL). */
function defaultProject(req: Omit<QueuedRequest, 'context'>, context: QueuedContext): string {
  for (const o of req.outputs ?? []) {
    const ref = 'refs' in o ? o.refs?.[0] : undefined;
    if (ref) return ref.replace(/[@:][^/@:]*$/, '').replace(/@.*$/, '');
  }
  // A URL context's builds share a worker's cache (its git commits, its base images) like an upload's.
  return 'digest' in context ? context.digest : context.url;
}

function unavailable(err: unknown): Error {
  if (err instanceof BuildliteError) return err;
  return new CodedError('INTERNAL', `the queue is not reachable: ${err instanceof Error ? err.message : String(err)}`, { retryable: true });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
