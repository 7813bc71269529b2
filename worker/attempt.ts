import type { Redis } from 'ioredis';
import type { BuildRecord } from './records.js';
import type { Keys } from './redis-keys.js';
import type { BuildTiming } from './metrics.js';

/**
 * One attempt at a build, as its start recorded it. `number` is the one
 * attempt number of the service: the build record's `attempts` counter,
 * raised by each start, so the worker's log, the client's "build restarted
 * (attempt N)" warning, BuildInfo.attempts and the metrics all say the same.
 * BullMQ's own attemptsMade is not it: a job moved back from a lost worker is
 * restarted without counting as a made attempt.
 */
export interface Attempt {
  readonly number: number;
  /** Set when this attempt took the build over from a worker that was lost while running it. */
  readonly tookOverFrom?: string;
  readonly timing: BuildTiming;
}

/**
 * Marks the build running on `workerId` and counts the attempt. Every orderly
 * hand-back (a retry, a drain, a failed attempt) sets the state to `queued`
 * before the job is released; a build still `running` when an attempt starts
 * was left by a worker that stopped renewing its lock: this attempt takes it over.
 */
export async function beginAttempt(redis: Redis, keys: Keys, workerId: string, rec: BuildRecord): Promise<Attempt> {
  const now = Date.now();
  const key = keys.build(rec.buildId);
  const res = await redis
    .multi()
    .hset(key, { state: 'running', worker: workerId })
    // The first start only: queue wait and duration count from it, across attempts.
    .hsetnx(key, 'startedAt', String(now))
    .hincrby(key, 'attempts', 1)
    // It no longer waits for its client's quota (client-slots.ts).
    .hdel(key, 'waiting')
    .exec();
  const counted = Number(res?.[2]?.[1]);
  const number = Number.isSafeInteger(counted) && counted > 0 ? counted : rec.attempts + 1;
  const lost = rec.state === 'running' && rec.attempts > 0;
  return {
    number,
    ...(lost ? { tookOverFrom: rec.worker ?? 'unknown' } : {}),
    timing: { queuedAt: rec.createdAt, startedAt: rec.startedAt ?? now },
  };
}

/** Hands the build back to the queue: the next attempt restarts it rather than taking it over. */
export async function requeue(redis: Redis, keys: Keys, buildId: string): Promise<void> {
  await redis.hset(keys.build(buildId), 'state', 'queued');
}

/** The timing of a build that started (for a build ended outside an attempt: a cancel or a failed job). */
export function timingOf(rec: BuildRecord | undefined): BuildTiming | undefined {
  return rec?.startedAt !== undefined ? { queuedAt: rec.createdAt, startedAt: rec.startedAt } : undefined;
}
