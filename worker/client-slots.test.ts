import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../test/helpers/redis.js';
import { ClientSlots } from './client-slots.js';
import { EVENT_FIELD } from './event-stream.js';
import { Keys } from './redis-keys.js';
import { SHARED_QUEUE, type BuildJobData } from './jobs.js';
import { EVENT_WRITER_DEFAULTS, EventWriter } from './events.js';

/**
 * Client slots with real BullMQ queues and workers on a real Redis: the
 * processor below takes a slot the way worker/processor.ts does, then holds
 * the build until the test lets it end.
 */
describe('client concurrency slots (real BullMQ and Redis)', () => {
  let server: TestRedis;
  let redis: Redis;
  let keys: Keys;
  let queue: Queue<BuildJobData>;
  const stop: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
  });
  afterEach(async () => {
    for (const s of stop.splice(0).reverse()) await s();
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  /** A fresh prefix and shared queue, and a worker of `concurrency` whose builds run until released. */
  async function setup(concurrency: number, slotOpts: { recheckMs: number; maxRecheckMs: number }) {
    keys = new Keys(`s${randomBytes(4).toString('hex')}`);
    queue = new Queue<BuildJobData>(SHARED_QUEUE, { connection: redis as never, prefix: keys.bullPrefix });
    const slots = new ClientSlots(redis, keys, undefined, slotOpts);
    const started: string[] = [];
    const ends = new Map<string, () => void>();
    const worker = new Worker<BuildJobData>(
      SHARED_QUEUE,
      async (job: Job<BuildJobData>, token?: string) => {
        const writer = new EventWriter(redis, keys, job.data.buildId, EVENT_WRITER_DEFAULTS, { queue: job.queueName, token: token! });
        await writer.begin();
        const slot = await slots.acquire(job, token!, writer);
        started.push(job.data.buildId);
        await new Promise<void>((resolve) => ends.set(job.data.buildId, resolve));
        await slot?.release();
      },
      { connection: { url: server.url, maxRetriesPerRequest: null } as never, prefix: keys.bullPrefix, concurrency, lockDuration: 5000 },
    );
    stop.push(async () => {
      for (const end of ends.values()) end();
      await worker.close();
      await slots.close();
      await queue.close();
    });
    await worker.waitUntilReady();
    return { started, end: (id: string) => ends.get(id)!() };
  }

  async function submit(buildId: string, client: string, max: number): Promise<void> {
    await redis.hset(keys.build(buildId), { buildId, client, state: 'queued', queue: SHARED_QUEUE, createdAt: String(Date.now()) });
    await queue.add('build', { buildId, client, project: 'p', request: {} as never, quota: { maxConcurrentBuilds: max } }, { jobId: buildId });
  }

  const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 10_000) => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) if (await check()) return;
    throw new Error(`timed out waiting for ${what}`);
  };
  const warnings = async (id: string) =>
    (await redis.xrange(keys.events(id), '-', '+')).map(([, f]) => JSON.parse(f[f.indexOf(EVENT_FIELD) + 1]!) as { type: string; message?: string }).filter((e) => e.type === 'warning');

  it("a client at its quota waits without holding a worker slot; another client's build runs; a freed slot wakes the waiter", async () => {
    // Re-checks so slow that only the wake-up can start a2 within the test's bound.
    const w = await setup(2, { recheckMs: 20_000, maxRecheckMs: 20_000 });
    await submit('a1', 'a', 1);
    await until('a1 started', () => w.started.includes('a1'));
    await submit('a2', 'a', 1);
    await until('a2 waiting', async () => (await queue.getJob('a2'))?.isDelayed() ?? false);
    // The worker's second slot went to client b, not to a2.
    await submit('b1', 'b', 1);
    await until('b1 started', () => w.started.includes('b1'));
    expect(w.started).toEqual(['a1', 'b1']);
    expect(await redis.hget(keys.build('a2'), 'waiting')).toBe('client a is at its limit of 1 concurrent build');
    expect(await redis.hget(keys.build('a2'), 'state')).toBe('queued');
    expect(await warnings('a2')).toEqual([{ type: 'warning', message: 'waiting: client a is at its limit of 1 concurrent build' }]);
    expect(await redis.get(keys.quotaWaitTotal)).toBe('1');

    const t0 = Date.now();
    w.end('a1');
    await until('a2 started', () => w.started.includes('a2'), 5000);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(Object.keys(await redis.hgetall(keys.clientSlots('a')))).toEqual(['a2']);
    expect(await redis.zcard(keys.clientWaiting('a'))).toBe(0);
  });

  it('a waiting build re-checks on its own, warns once however often it re-checks, and is counted once', async () => {
    const w = await setup(2, { recheckMs: 100, maxRecheckMs: 200 });
    await submit('c1', 'c', 1);
    await until('c1 started', () => w.started.includes('c1'));
    await submit('c2', 'c', 1);
    await until('several re-checks', async () => Number(await redis.hget(keys.build('c2'), 'quotaChecks')) >= 4);
    expect(w.started).toEqual(['c1']);
    expect(await warnings('c2')).toHaveLength(1);
    expect(await redis.get(keys.quotaWaitTotal)).toBe('1');
    w.end('c1');
    await until('c2 started', () => w.started.includes('c2'));
  });

  it("a dead worker's slot is reclaimed once its job lock is gone, unless its build was running (then it waits to be taken over)", async () => {
    const w = await setup(2, { recheckMs: 100, maxRecheckMs: 200 });
    // A slot left by a worker that died: its job's lock expired already, so it is forgotten at the next take.
    await redis.hset(keys.clientSlots('d'), 'ghost', `${SHARED_QUEUE} dead-token`);
    await submit('d1', 'd', 1);
    await until('d1 started past a dead slot', () => w.started.includes('d1'));
    expect(await redis.hexists(keys.clientSlots('d'), 'ghost')).toBe(0);
    w.end('d1');

    // The slot of a build that was running when its worker died (lock gone, record still running)
    // is kept for it: a younger build must not overtake it before another worker takes it over.
    await redis.hset(keys.build('orphan'), { buildId: 'orphan', client: 'f', state: 'running' });
    await redis.hset(keys.clientSlots('f'), 'orphan', `${SHARED_QUEUE} dead-token`);
    await submit('f2', 'f', 1);
    await until('f2 waiting', async () => (await queue.getJob('f2'))?.isDelayed() ?? false);
    // Handed back (a retry, a drain) without the slot being freed: dead now, so f2 goes.
    await redis.hset(keys.build('orphan'), 'state', 'queued');
    await until('f2 started', () => w.started.includes('f2'));
    w.end('f2');

    // A slot whose worker still holds the job lock counts: e2 waits until that lock is gone.
    const lock = keys.jobLock(SHARED_QUEUE, 'held');
    await redis.set(lock, 'live-token', 'PX', 60_000);
    await redis.hset(keys.clientSlots('e'), 'held', `${SHARED_QUEUE} live-token`);
    await submit('e2', 'e', 1);
    await until('e2 waiting', async () => (await queue.getJob('e2'))?.isDelayed() ?? false);
    await new Promise((r) => setTimeout(r, 500));
    expect(w.started).not.toContain('e2');
    // The holder dies: BullMQ stops renewing its lock and it expires.
    await redis.del(lock);
    await until('e2 started once the lock expired', () => w.started.includes('e2'));
  });
});
