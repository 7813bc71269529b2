import path from 'node:path';
import { DelayedError, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BuildEvent, BuildResult } from '../core/build.js';
import { CodedError, toWire, type WireError } from '../core/errors.js';
import type { Builder } from '../builder/index.js';
import { beginAttempt, requeue, timingOf, type Attempt } from './attempt.js';
import type { ClientSlot, ClientSlots } from './client-slots.js';
import type { ServiceStore } from '../store/index.js';
import { unpackBuildContexts } from './context.js';
import { EventWriter, type EventWriterOptions } from './events.js';
import { limitedBy } from './finish-build.js';
import { parseBuildRecord } from './records.js';
import type { BuildJobData } from './jobs.js';
import type { Keys } from './redis-keys.js';
import type { SecretVault } from './secret-vault.js';
import { StepLogs } from './step-logs.js';
import type { ServiceMetrics } from './metrics.js';

/** How much longer than the build record the step-log index lives (it is written before the record's TTL is set). */
const LOGS_KEY_GRACE_S = 3600;

/**
 * How often a running build re-reads its cancel flag. Cancel requests arrive
 * by pub/sub; a message lost while the subscriber reconnects would otherwise
 * let a cancelled build run on, and push.
 */
const CANCEL_POLL_MS = 1000;

/** Why this worker stopped a running build; each ends differently. */
export type StopReason = 'cancel' | 'lock' | 'drain';

export interface ProcessorDeps {
  readonly workerId: string;
  readonly builder: Builder;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly root: string;
  /** Where contexts are read from and full step logs are written to (shared with the API). */
  readonly store: ServiceStore;
  readonly events: EventWriterOptions;
  readonly log: Logger;
  readonly metrics?: ServiceMetrics;
  readonly vault?: SecretVault;
  /** Seconds a project → worker hint lives (cache locality). */
  readonly projectTtlS: number;
  /** Holds builds to their client's concurrency quota; without it, quotas in jobs are not enforced. */
  readonly slots?: ClientSlots;
}

/** A running build's stop switch, registered so cancel messages, lock loss and drain can reach it. */
export interface RunningBuild {
  readonly controller: AbortController;
  stop(reason: StopReason): void;
  reason?: StopReason;
  /** Settles once the attempt has unwound (its steps killed, its context removed). */
  readonly ended: Promise<void>;
}

/**
 * Runs one build job: marks it running, unpacks (or fetches) its context, streams the
 * builder's events to Redis, and ends it exactly once. Failures that a retry
 * can fix (registry down, a Redis blip) are rethrown for BullMQ's backoff;
 * Dockerfile and RUN failures end the build and become UnrecoverableError; a
 * worker that lost the job publishes nothing more.
 */
export async function processBuild(
  deps: ProcessorDeps,
  job: Job<BuildJobData>,
  token: string | undefined,
  bullSignal: AbortSignal | undefined,
  running: Map<string, RunningBuild>,
): Promise<BuildResult | undefined> {
  const { buildId } = job.data;
  const { redis, keys, log } = deps;
  const owner = token ? { queue: job.queueName, token } : undefined;
  const writer = new EventWriter(redis, keys, buildId, deps.events, owner);
  const controller = new AbortController();
  let markEnded!: () => void;
  const handle: RunningBuild = {
    controller,
    ended: new Promise<void>((resolve) => (markEnded = resolve)),
    stop(reason) {
      if (handle.reason) return;
      handle.reason = reason;
      controller.abort(new CodedError('CANCELLED', reason === 'cancel' ? 'the build was cancelled' : `the worker stopped the build (${reason === 'lock' ? 'it lost the job' : 'draining'})`));
    },
  };
  const onBull = () => handle.stop('lock');
  bullSignal?.addEventListener('abort', onBull, { once: true });
  // An earlier attempt of this build on this worker (it lost the job, which came back here) may
  // still be unwinding: stop it and wait, so two attempts never run on one root at once.
  const earlier = running.get(buildId);
  running.set(buildId, handle);
  let blog = log.child({ buildId, client: job.data.client });
  let cancelPoll: NodeJS.Timeout | undefined;
  let slot: ClientSlot | undefined;

  try {
    if (earlier) {
      earlier.stop('lock');
      await earlier.ended;
    }
    const rec = parseBuildRecord(await redis.hgetall(keys.build(buildId)));
    if (!rec) throw new UnrecoverableError(`build ${buildId} has no record (expired or deleted)`);
    if (rec.state === 'succeeded' || rec.state === 'failed' || rec.state === 'cancelled') return undefined;
    await writer.begin();
    if (rec.cancelRequested) {
      if (await writer.finish({ state: 'cancelled', body: errorBody(new CodedError('CANCELLED', 'the build was cancelled')), ...(owner ? { owner } : {}) })) {
        deps.metrics?.buildEnded('cancelled', timingOf(rec));
      }
      return undefined;
    }
    // Before the attempt begins: a build that waits for its client's quota stays queued.
    if (deps.slots && token) slot = await deps.slots.acquire(job, token, writer);
    const attempt = await beginAttempt(redis, keys, deps.workerId, rec);
    blog = blog.child({ attempt: attempt.number });
    if (attempt.tookOverFrom !== undefined) {
      deps.metrics?.moved.inc();
      blog.warn({ lostWorker: attempt.tookOverFrom }, 'took over the build of a lost worker');
    }
    if (attempt.number > 1) await writer.append({ type: 'warning', message: `build restarted (attempt ${attempt.number}) on worker ${deps.workerId}` });

    let secrets: ReadonlyMap<string, Buffer> = new Map();
    if (job.data.secretsHolder) {
      const held = deps.vault?.holderId === job.data.secretsHolder ? deps.vault.get(buildId) : undefined;
      if (!held) {
        const err = new CodedError('INVALID_ARGUMENT', 'the secrets of this build were held in memory by the API process that accepted it, which is gone: submit it again');
        if (await writer.finish({ state: 'failed', body: errorBody(err), extra: { error: JSON.stringify(err.toWire()) }, ...(owner ? { owner } : {}) })) {
          deps.metrics?.buildEnded('failed', attempt.timing);
        }
        throw new UnrecoverableError(err.message);
      }
      secrets = held;
    }

    cancelPoll = setInterval(() => {
      void redis.hget(keys.build(buildId), 'cancelRequested').then((v) => v === '1' && handle.stop('cancel'), () => undefined);
    }, CANCEL_POLL_MS);
    cancelPoll.unref();
    blog.info({ project: job.data.project }, 'build started');
    deps.metrics?.running.inc();
    const observe = deps.metrics?.observer();
    let terminal: BuildEvent | undefined;
    const tmp = path.join(deps.root, 'tmp');
    const ctx = await unpackBuildContexts(deps.store, job.data.request, tmp, { builder: deps.builder, secrets }, controller.signal).catch((err: unknown) => {
      terminal = { seq: 0, type: 'error', error: toWire(err) };
      return undefined;
    });
    const logs = await StepLogs.create(tmp, buildId, path.join(deps.root, 'logs'));
    try {
      if (ctx) {
        const events = deps.builder.build(ctx.request, { secrets, signal: controller.signal });
        for await (const ev of events) {
          observe?.(ev);
          if (ev.type === 'result' || ev.type === 'error') terminal = ev;
          else if (!handle.reason || handle.reason === 'cancel') {
            // Refused: the job's lock is gone, so another attempt may run this build. Stop ours.
            if (!(await writer.append(ev.type === 'log' ? logs.take(ev) : ev))) handle.stop('lock');
          }
        }
      }
      // Before the result: a client that sees the end can fetch every step's log.
      if (!handle.reason || handle.reason === 'cancel') await keepLogs(deps, buildId, logs, writer, blog);
    } finally {
      deps.metrics?.running.dec();
      await ctx?.remove();
      await logs.remove();
    }
    return await conclude(deps, job, token, writer, handle, terminal, attempt, blog);
  } catch (err) {
    // A build whose lock is gone is another attempt's now: leave its record alone.
    if (handle.reason !== 'lock') await handBackOnError(deps, job, err, blog);
    throw err;
  } finally {
    clearInterval(cancelPoll);
    // A lost lock leaves the slot to the attempt that took the build over (it re-takes the same one).
    if (slot && handle.reason !== 'lock') await slot.release().catch((err: unknown) => blog.warn({ err: err instanceof Error ? err.message : String(err) }, 'could not free the client slot (it frees when the job lock expires)'));
    bullSignal?.removeEventListener('abort', onBull);
    // Only our own entry: a later attempt may have registered itself already.
    if (running.get(buildId) === handle) running.delete(buildId);
    markEnded();
  }
}

async function conclude(
  deps: ProcessorDeps,
  job: Job<BuildJobData>,
  token: string | undefined,
  writer: EventWriter,
  handle: RunningBuild,
  terminal: BuildEvent | undefined,
  attempt: Attempt,
  blog: Logger,
): Promise<BuildResult | undefined> {
  const { buildId, project } = job.data;
  const owner = token ? { queue: job.queueName, token } : undefined;
  const done = (state: 'succeeded' | 'failed' | 'cancelled') => {
    deps.metrics?.buildEnded(state, attempt.timing);
    if (state !== 'failed' || !isRetry(job)) deps.vault?.drop(buildId);
  };

  if (handle.reason === 'lock') {
    blog.warn('lost the job lock: stopped the build without publishing a result');
    throw new LockLostError();
  }
  if (handle.reason === 'drain' && terminal?.type !== 'result') {
    // Hand the job back untouched: another worker (or this one, restarted) runs it.
    blog.info('draining: handing the build back to the queue');
    await requeue(deps.redis, deps.keys, buildId);
    if (token) await job.moveToWait(token);
    throw new WaitingError();
  }
  if (terminal?.type === 'result') {
    const ok = await writer.finish({ state: 'succeeded', body: { type: 'result', result: terminal.result }, extra: { imageDigest: terminal.result.imageDigest }, ...(owner ? { owner } : {}) });
    if (!ok) {
      blog.warn('build finished but the job was no longer ours: result not published');
      throw new LockLostError();
    }
    await deps.redis.set(deps.keys.project(project), deps.workerId, 'EX', deps.projectTtlS).catch(() => undefined);
    done('succeeded');
    blog.info({ imageDigest: terminal.result.imageDigest }, 'build succeeded');
    return terminal.result;
  }
  const error: WireError = terminal?.type === 'error' ? terminal.error : { code: 'INTERNAL', message: 'the builder ended without a result', retryable: false };
  if (handle.reason === 'cancel' || error.code === 'CANCELLED') {
    const cancelled: WireError = { ...error, code: 'CANCELLED', message: 'the build was cancelled', retryable: false };
    await writer.finish({ state: 'cancelled', body: { type: 'error', error: cancelled }, extra: { error: JSON.stringify(cancelled) }, ...(owner ? { owner } : {}) });
    done('cancelled');
    blog.info('build cancelled');
    throw new UnrecoverableError('cancelled');
  }
  const attemptsLeft = (job.opts.attempts ?? 1) - (job.attemptsMade + 1);
  if (error.retryable && attemptsLeft > 0) {
    // Infrastructure, not the Dockerfile: BullMQ retries with backoff; the stream says so.
    await writer.append({ type: 'warning', message: `attempt ${attempt.number} failed (${error.message}); retrying` });
    await requeue(deps.redis, deps.keys, buildId);
    deps.metrics?.retried.inc({ code: error.code });
    blog.warn({ code: error.code }, 'build failed with a retryable error; retrying');
    throw new RetryError(error.message);
  }
  const body = { type: 'error' as const, error };
  const ok = await writer.finish({ state: 'failed', body, extra: { error: JSON.stringify(error) }, ...(owner ? { owner } : {}) });
  if (ok) done('failed');
  const limit = ok ? limitedBy(body) : undefined;
  if (limit) deps.metrics?.limited.inc({ limit });
  blog.info({ code: error.code }, 'build failed');
  throw new UnrecoverableError(error.message);
}

/** Stores the build's step logs and indexes them for GetLog; a failure costs the logs, never the build. */
async function keepLogs(deps: ProcessorDeps, buildId: string, logs: StepLogs, writer: EventWriter, blog: Logger): Promise<void> {
  if (logs.steps === 0) return;
  try {
    const { stored, failed } = await logs.store(deps.store, { maxBytes: deps.builder.limits.maxStepLogBytes + (1 << 20) });
    if (stored.size > 0) {
      const key = deps.keys.logs(buildId);
      const fields = Object.fromEntries([...stored].map(([v, ref]) => [v, JSON.stringify(ref)]));
      // Past the record's own expiry (set a little later, at finish): a listed build's logs are always fetchable.
      const tx = deps.redis.multi().hset(key, fields);
      if (deps.events.recordTtlS > 0) tx.expire(key, deps.events.recordTtlS + LOGS_KEY_GRACE_S);
      await tx.exec();
    }
    if (failed.length > 0) await writer.append({ type: 'warning', message: `the full logs of ${failed.length} step(s) could not be stored in ${deps.store.location}` });
  } catch (err) {
    blog.warn({ err: err instanceof Error ? err.message : String(err) }, 'step logs not stored');
    await writer.append({ type: 'warning', message: `the full step logs could not be stored in ${deps.store.location}` }).catch(() => undefined);
  }
}

/** This attempt lost the job's lock: it ends silently (the attempt that holds the lock speaks for the build). */
class LockLostError extends Error {
  constructor() {
    super('job lock lost');
  }
}

/** This attempt failed for a retryable reason and already handed the build back: BullMQ retries it. */
class RetryError extends Error {}

/**
 * An attempt that threw something unplanned (Redis gone mid-call, a disk
 * error) is retried by BullMQ as well when attempts are left: hand the build
 * back first, so the next attempt restarts it rather than taking it over.
 */
async function handBackOnError(deps: ProcessorDeps, job: Job<BuildJobData>, err: unknown, blog: Logger): Promise<void> {
  if (err instanceof UnrecoverableError || err instanceof WaitingError || err instanceof DelayedError || err instanceof LockLostError || err instanceof RetryError || !isRetry(job)) return;
  blog.warn({ err: err instanceof Error ? err.message : String(err) }, 'build attempt failed unexpectedly; retrying');
  deps.metrics?.retried.inc({ code: 'INTERNAL' });
  await requeue(deps.redis, deps.keys, job.data.buildId).catch(() => undefined);
}

function isRetry(job: Job<BuildJobData>): boolean {
  return (job.opts.attempts ?? 1) > job.attemptsMade + 1;
}

function errorBody(err: CodedError): { type: 'error'; error: WireError } {
  return { type: 'error', error: err.toWire() };
}
