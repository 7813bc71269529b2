import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pino, {} from 'pino';
import { CodedError } from '../core/errors.js';
import { Builder } from '../builder/index.js';
import { handleControl } from './control.js';
import { EVENT_WRITER_DEFAULTS } from './events.js';
import { finishBuild, Keys, SHARED_QUEUE, workerQueueName } from './jobs.js';
import { processBuild } from './processor.js';
import { listWorkers, WorkerPresence } from './registry.js';
import { sweepWorkerState } from './sweep.js';
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
};
/**
 * A build worker: BullMQ Workers on the shared queue and on this worker's own
 * queue (builds routed here for cache locality), sharing one concurrency
 * budget; one Builder for all its builds; cancel and control messages over
 * Redis pub/sub; and adoption of the own queue of a worker that died.
 */
export class BuildWorker {
    id;
    opts;
    keys;
    redis;
    sub;
    builder;
    presence;
    log;
    running = new Map();
    bull = [];
    shared;
    sharedPaused = false;
    activeOwn = 0;
    activeShared = 0;
    adopting = new Map();
    closing;
    constructor(id, opts, keys, redis, sub, builder, presence, log) {
        this.id = id;
        this.opts = opts;
        this.keys = keys;
        this.redis = redis;
        this.sub = sub;
        this.builder = builder;
        this.presence = presence;
        this.log = log;
    }
    static async start(options) {
        const opts = { ...WORKER_DEFAULTS, ...stripUndefined(options) };
        if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1)
            throw new CodedError('INVALID_OPTION', `concurrency must be a positive integer, got ${opts.concurrency}`);
        const id = opts.id ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
        if (!/^[A-Za-z0-9._-]{1,100}$/.test(id))
            throw new CodedError('INVALID_OPTION', `worker id "${id}": use letters, digits, '.', '_' and '-'`);
        const log = (opts.logger ?? pino({ name: 'buildlite-worker' })).child({ worker: id });
        const root = path.resolve(opts.root);
        // The builder's open() sweeps runc containers, mounts and active snapshots a crash left; then ours.
        const builder = await Builder.open({ ...(opts.builder ?? {}), root });
        const swept = await sweepWorkerState(root);
        log.info(swept, 'startup sweep done');
        const keys = new Keys(opts.prefix);
        // maxRetriesPerRequest null: commands wait through a Redis restart instead of failing builds.
        const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
        const sub = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
        redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
        sub.on('error', () => undefined);
        const presence = new WorkerPresence(redis, keys, id, opts.concurrency, opts.heartbeatTtlMs, () => undefined);
        const w = new BuildWorker(id, { ...opts, root, contextsDir: path.resolve(opts.contextsDir ?? path.join(root, 'contexts')) }, keys, redis, sub, builder, presence, log);
        await w.init();
        return w;
    }
    deps() {
        return {
            workerId: this.id,
            builder: this.builder,
            redis: this.redis,
            keys: this.keys,
            root: this.opts.root,
            contextsDir: this.opts.contextsDir,
            events: { ...EVENT_WRITER_DEFAULTS, ...(this.opts.events ?? {}) },
            log: this.log,
            projectTtlS: this.opts.projectTtlS,
            ...(this.opts.metrics ? { metrics: this.opts.metrics } : {}),
            ...(this.opts.vault ? { vault: this.opts.vault } : {}),
        };
    }
    makeWorker(queue, concurrency, kind) {
        const deps = this.deps();
        const worker = new Worker(queue, async (job, token, signal) => {
            this.count(kind, +1);
            try {
                return await processBuild(deps, job, token, signal, this.running);
            }
            finally {
                this.count(kind, -1);
            }
        }, {
            connection: { url: this.opts.redisUrl, maxRetriesPerRequest: null },
            prefix: this.keys.bullPrefix,
            concurrency,
            lockDuration: this.opts.lockDurationMs,
            stalledInterval: this.opts.stalledIntervalMs,
            maxStalledCount: this.opts.maxStalledCount,
            name: this.id,
            removeOnComplete: { age: 24 * 3600, count: 1000 },
            removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
        });
        worker.on('error', (err) => this.log.warn({ queue, err: err.message }, 'queue worker error'));
        // Lock renewal failed: another worker may already run this build. Stop ours, publish nothing.
        worker.on('lockRenewalFailed', (ids) => {
            for (const jobId of ids)
                this.running.get(jobId)?.stop('lock');
        });
        // Failed outside our processor (e.g. stalled too often): make sure watchers see the end.
        worker.on('failed', (job, err) => {
            if (!job || this.running.has(job.data.buildId))
                return;
            const error = { code: 'INTERNAL', message: `the build's job failed: ${err.message}`, retryable: false };
            void finishBuild(this.redis, this.keys, { buildId: job.data.buildId, state: 'failed', body: { type: 'error', error }, seq: 1, extra: { error: JSON.stringify(error) } }).catch(() => undefined);
        });
        return worker;
    }
    async init() {
        await this.presence.start();
        await this.sub.subscribe(this.keys.cancelChannel, this.keys.controlChannel);
        this.sub.on('message', (channel, message) => {
            if (channel === this.keys.cancelChannel) {
                this.running.get(message)?.stop('cancel');
                return;
            }
            let req;
            try {
                req = JSON.parse(message);
            }
            catch {
                return;
            }
            void handleControl(this.builder, this.redis, this.id, req).catch((err) => this.log.warn({ err: String(err) }, 'control request failed'));
        });
        const own = this.makeWorker(workerQueueName(this.id), this.opts.concurrency, 'own');
        this.shared = this.makeWorker(SHARED_QUEUE, this.opts.concurrency, 'shared');
        this.bull.push(own, this.shared);
        await Promise.all(this.bull.map((w) => w.waitUntilReady()));
        this.adoptTimer = setInterval(() => void this.adoptDead().catch(() => undefined), this.opts.heartbeatTtlMs / 2);
        this.adoptTimer.unref();
        this.log.info({ concurrency: this.opts.concurrency }, 'worker ready');
    }
    adoptTimer;
    /** Keeps own + shared builds within the concurrency budget: the shared queue waits while own-queue builds use it. */
    count(kind, delta) {
        if (kind === 'own')
            this.activeOwn += delta;
        else
            this.activeShared += delta;
        const total = this.activeOwn + this.activeShared;
        this.presence.setActive(total);
        if (this.closing)
            return;
        if (!this.sharedPaused && this.activeOwn > 0 && total >= this.opts.concurrency) {
            this.sharedPaused = true;
            void this.shared.pause(true);
        }
        else if (this.sharedPaused && total < this.opts.concurrency) {
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
    async adoptDead() {
        if (this.closing)
            return;
        for (const w of await listWorkers(this.redis, this.keys)) {
            if (w.alive || w.id === this.id)
                continue;
            const existing = this.adopting.get(w.id);
            const queueName = workerQueueName(w.id);
            const q = new Queue(queueName, { connection: this.redis, prefix: this.keys.bullPrefix });
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
            if (existing)
                continue;
            const got = await this.redis.set(this.keys.adoptLock(w.id), this.id, 'PX', this.opts.heartbeatTtlMs * 4, 'NX');
            if (got !== 'OK')
                continue;
            this.log.info({ dead: w.id, pending }, "adopting a dead worker's queue");
            this.adopting.set(w.id, this.makeWorker(queueName, 1, 'adopted'));
        }
    }
    /** Shared-queue depth by state, for /metrics. */
    async queueDepth() {
        const q = new Queue(SHARED_QUEUE, { connection: this.redis, prefix: this.keys.bullPrefix });
        try {
            return await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed');
        }
        finally {
            await q.close();
        }
    }
    /** Builds running in this process right now. */
    get activeBuilds() {
        return this.running.size;
    }
    /**
     * Drains: takes no new job, lets running builds finish for up to `graceMs`,
     * then hands the rest back to the queue (they restart elsewhere) and closes.
     */
    close(graceMs = 30_000) {
        this.closing ??= (async () => {
            if (this.adoptTimer)
                clearInterval(this.adoptTimer);
            await Promise.all([...this.bull, ...this.adopting.values()].map((w) => w.pause(true).catch(() => undefined)));
            const deadline = Date.now() + graceMs;
            while (this.running.size > 0 && Date.now() < deadline)
                await sleep(100);
            for (const b of this.running.values())
                b.stop('drain');
            while (this.running.size > 0)
                await sleep(50);
            await Promise.all([...this.bull, ...this.adopting.values()].map((w) => w.close().catch(() => undefined)));
            await this.presence.stop().catch(() => undefined);
            this.sub.disconnect();
            await this.redis.quit().catch(() => this.redis.disconnect());
            this.log.info('worker stopped');
        })();
        return this.closing;
    }
}
function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}
function stripUndefined(o) {
    return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
//# sourceMappingURL=worker.js.map