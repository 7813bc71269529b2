/**
 * A client's concurrency quota at run time, across all workers.
 *
 * Vocabulary: a client's *slots* are its builds running now, a Redis hash
 * build id → "QUEUE TOKEN" of the attempt that took it. A slot is *live*
 * while its job's BullMQ lock exists (BullMQ renews it while the worker
 * lives) or while its build's record says `running`. So when a worker dies:
 * a build it had not started yet frees its slot as soon as the lock expires
 * (lockDuration), with no lease or timer of ours; a build it was running
 * keeps its slot until another worker takes it over (re-entering the same
 * slot) or it ends (FINISH_LUA frees it: BullMQ fails a job that stalls too
 * often, and the worker's failed handler ends the build), so a younger build
 * of the client cannot overtake it in the gap. A hand-back (retry, drain)
 * sets the record to `queued` and frees the slot; should that free be lost,
 * the slot is dead once the lock is gone.
 *
 * A build that finds its client's slots full is *waiting*: its job goes back
 * to the delayed set, the worker's slot goes to another job (another
 * client's build is never held up), and the build is *woken* (promoted) when
 * one of its client's builds ends, or re-checks on its own after a backoff
 * if that wake-up is lost.
 *
 *   const slot = await slots.acquire(job, token, writer);   // waits: throws DelayedError
 *   try { build } finally { await slot?.release(); }       // frees it, wakes the oldest waiter
 *
 * A build that already holds its client's slot takes it again (a retry, or a
 * take-over after a lost worker): the slot follows the build, not the attempt.
 */
import { DelayedError, Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { CodedError } from '../core/errors.js';
import type { EventWriter } from './events.js';
import type { BuildJobData } from './jobs.js';
import type { Keys } from './redis-keys.js';
import type { ServiceMetrics } from './metrics.js';

export interface ClientSlotOptions {
  /** First re-check of a waiting build (ms); each next one waits twice as long. */
  readonly recheckMs: number;
  readonly maxRecheckMs: number;
}

export const CLIENT_SLOT_DEFAULTS = {
  // A waiting build is woken when a slot frees; these re-checks only cover a lost wake-up
  // (the releasing worker died), so they can be slow: 1 s, 2 s, 4 s … then every 15 s.
  recheckMs: 1000,
  maxRecheckMs: 15_000,
} satisfies Required<ClientSlotOptions>;

/**
 * KEYS: slots hash, waiting zset. ARGV: build id, queue, token, max, BullMQ
 * key prefix, key prefix. Forgets dead slots (see above: no job lock, and a
 * build not running), then takes one if fewer than max are live (or this
 * build holds one already). Returns {taken 1|0, live slots}.
 */
const TAKE_LUA = `
local live = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local id = entries[i]
  if id ~= ARGV[1] then
    local q = string.match(entries[i + 1], '^(%S+) ')
    local locked = q and redis.call('EXISTS', ARGV[5] .. ':' .. q .. ':' .. id .. ':lock') == 1
    if locked or redis.call('HGET', ARGV[6] .. ':build:' .. id, 'state') == 'running' then
      live = live + 1
    else
      redis.call('HDEL', KEYS[1], id)
    end
  end
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and live >= tonumber(ARGV[4]) then return {0, live} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1, live + 1}
`;

/** KEYS: slots hash. ARGV: build id, "QUEUE TOKEN". Frees the slot only if this attempt holds it. */
const RELEASE_LUA = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`;

/** A slot held by one attempt of a build. */
export interface ClientSlot {
  /** Frees the slot (if this attempt still holds it) and wakes the client's oldest waiting build. */
  release(): Promise<void>;
}

export class ClientSlots {
  private readonly queues = new Map<string, Queue>();
  private readonly opts: ClientSlotOptions;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly metrics?: ServiceMetrics,
    opts: Partial<ClientSlotOptions> = {},
  ) {
    this.opts = { ...CLIENT_SLOT_DEFAULTS, ...opts };
    if (!(this.opts.recheckMs >= 10 && this.opts.maxRecheckMs >= this.opts.recheckMs)) {
      throw new CodedError('INVALID_OPTION', `client slots: recheckMs (${this.opts.recheckMs}) must be at least 10 and at most maxRecheckMs (${this.opts.maxRecheckMs})`);
    }
  }

  /**
   * Takes a slot of the build's client, or makes the build wait: its record
   * says why (state stays queued), its stream gets one warning the first
   * time, and its job is moved to the delayed set (throws DelayedError, which
   * BullMQ takes as "not done, not failed"). Undefined: the build has no quota.
   */
  async acquire(job: Job<BuildJobData>, token: string, writer: EventWriter): Promise<ClientSlot | undefined> {
    const max = job.data.quota?.maxConcurrentBuilds;
    if (max === undefined) return undefined;
    const { buildId, client } = job.data;
    const holder = `${job.queueName} ${token}`;
    const [taken] = (await this.redis.eval(TAKE_LUA, 2, this.keys.clientSlots(client), this.keys.clientWaiting(client), buildId, job.queueName, token, max, this.keys.bullPrefix, this.keys.prefix)) as [number, number];
    if (taken === 1) return { release: () => this.release(client, buildId, holder) };

    const reason = `client ${client} is at its limit of ${max} concurrent build${max === 1 ? '' : 's'}`;
    const key = this.keys.build(buildId);
    const res = await this.redis
      .multi()
      .hset(key, 'waiting', reason)
      .hsetnx(key, 'quotaWaitedAt', String(Date.now()))
      .hincrby(key, 'quotaChecks', 1)
      .hget(key, 'createdAt')
      .exec();
    const first = res?.[1]?.[1] === 1;
    const checks = Number(res?.[2]?.[1]) || 1;
    const createdAt = Number(res?.[3]?.[1]) || Date.now();
    await this.redis.zadd(this.keys.clientWaiting(client), 'NX', createdAt, buildId);
    if (first) {
      await writer.append({ type: 'warning', message: `waiting: ${reason}` });
      await this.redis.incr(this.keys.quotaWaitTotal);
      this.metrics?.quotaWaits.inc();
    }
    const delayMs = Math.min(this.opts.maxRecheckMs, this.opts.recheckMs * 2 ** Math.min(checks - 1, 20));
    await job.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError(reason);
  }

  private async release(client: string, buildId: string, holder: string): Promise<void> {
    await this.redis.eval(RELEASE_LUA, 1, this.keys.clientSlots(client), buildId, holder);
    await this.wakeOldest(client);
  }

  /**
   * Promotes the oldest of the client's waiting builds whose job is delayed
   * (one that was woken already and not yet picked up is skipped): a slot
   * just freed, so it need not wait out its re-check.
   */
  private async wakeOldest(client: string): Promise<void> {
    for (const id of await this.redis.zrange(this.keys.clientWaiting(client), '0', '4')) {
      const queueName = (await this.redis.hget(this.keys.build(id), 'queue')) ?? undefined;
      if (!queueName) continue;
      const job = await this.queue(queueName).getJob(id);
      if (!job || !(await job.isDelayed())) continue;
      // It may have been picked up meanwhile: then it needs no waking.
      if (await job.promote().then(() => true, () => false)) return;
    }
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis as never, prefix: this.keys.bullPrefix });
      q.on('error', () => undefined);
      this.queues.set(name, q);
    }
    return q;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    this.queues.clear();
  }
}
