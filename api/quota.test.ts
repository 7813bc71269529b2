import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LimitError } from '../core/limit-error.js';
import { CLIENT_QUOTA_DEFAULTS, type ClientQuota } from '../core/limits.js';
import { startRedis, type TestRedis } from '../test/helpers/redis.js';
import { finishBuild } from '../worker/finish-build.js';
import { Keys } from '../worker/redis-keys.js';
import { admitBuild, checkSubmitRate } from './quota.js';

/** Client quotas at submit, against a real Redis (the scripts are the contract every API process shares). */
describe('client quotas at submit (real Redis)', () => {
  let server: TestRedis;
  let redis: Redis;
  let keys: Keys;
  const quota = (q: Partial<ClientQuota>): ClientQuota => ({ ...CLIENT_QUOTA_DEFAULTS, ...q });

  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
    keys = new Keys(`q${randomBytes(4).toString('hex')}`);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  const nowMs = async () => {
    const [s, us] = await redis.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };

  it('refuses the N+1st submit within a minute, saying when to retry; other clients are not counted', async () => {
    const q = quota({ maxSubmissionsPerMinute: 3 });
    for (let i = 0; i < 3; i++) await checkSubmitRate(redis, keys, 'ci', q);
    const err = await checkSubmitRate(redis, keys, 'ci', q).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(LimitError);
    expect((err as LimitError).message).toMatch(/^client ci submitted 3 builds in the last minute: the limit is 3 a minute; retry in (\d+)s$/);
    const retryS = Number(/retry in (\d+)s/.exec((err as LimitError).message)![1]);
    expect(retryS).toBeGreaterThanOrEqual(59);
    expect(retryS).toBeLessThanOrEqual(60);
    expect((err as LimitError).toWire().details).toEqual({ limit: 'rate', value: 3, retryAfterMs: retryS * 1000 });
    // A refused submit is not counted: the window still holds 3.
    expect(await redis.zcard(keys.clientSubmits('ci'))).toBe(3);
    await checkSubmitRate(redis, keys, 'web', q);
  });

  it('the window slides: submits older than a minute no longer count, and the retry time is when the oldest leaves', async () => {
    const q = quota({ maxSubmissionsPerMinute: 2 });
    const now = await nowMs();
    // Two submits: one 61 s ago (out of the window), one 57.5 s ago (leaves it in 2.5 s).
    await redis.zadd(keys.clientSubmits('slide'), now - 61_000, 'old', now - 57_500, 'recent');
    await checkSubmitRate(redis, keys, 'slide', q);
    const err = await checkSubmitRate(redis, keys, 'slide', q).then(() => undefined, (e: unknown) => e as LimitError);
    // Rounded up to whole seconds: 3 s, or 2 s if this test was slow to get here.
    expect(err?.retryAfterMs).toBeGreaterThanOrEqual(2000);
    expect(err?.retryAfterMs).toBeLessThanOrEqual(3000);
    await new Promise((r) => setTimeout(r, err!.retryAfterMs));
    await checkSubmitRate(redis, keys, 'slide', q);
  });

  it('policy refuse: a client with max builds queued or running is refused; ended builds leave room', async () => {
    const q = quota({ maxConcurrentBuilds: 2, overQuota: 'refuse' });
    for (const id of ['b1', 'b2']) {
      await redis.hset(keys.build(id), { buildId: id, client: 'ref', state: 'queued' });
      await admitBuild(redis, keys, 'ref', q, id);
    }
    await expect(admitBuild(redis, keys, 'ref', q)).rejects.toThrow('client ref has 2 builds queued or running: the limit is 2');
    await expect(admitBuild(redis, keys, 'ref', q, 'b3')).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'concurrency', value: 2 });
    // Policy queue never refuses for concurrency (the worker holds the build back instead).
    await admitBuild(redis, keys, 'ref', { ...q, overQuota: 'queue' });

    // b1 ends through FINISH_LUA: it leaves the set (and its slot and waiting entries) at once.
    await redis.hset(keys.clientSlots('ref'), 'b1', 'builds tok');
    await redis.zadd(keys.clientWaiting('ref'), 1, 'b1');
    expect(await finishBuild(redis, keys, { buildId: 'b1', state: 'succeeded', body: { type: 'result' }, seq: 1 })).toBe(1);
    expect(await redis.zrange(keys.clientActive('ref'), '0', '-1')).toEqual(['b2']);
    expect(await redis.hexists(keys.clientSlots('ref'), 'b1')).toBe(0);
    expect(await redis.zcard(keys.clientWaiting('ref'))).toBe(0);
    await admitBuild(redis, keys, 'ref', q, 'b3');
    await expect(admitBuild(redis, keys, 'ref', q)).rejects.toThrow(/has 2 builds/);
  });

  it('policy refuse recovers entries whose build ended elsewhere or was never recorded', async () => {
    const q = quota({ maxConcurrentBuilds: 2, overQuota: 'refuse' });
    const now = await nowMs();
    // One whose record says it ended (its FINISH never reached the set), one never recorded and old,
    // one never recorded but recent (a submit in flight: kept).
    await redis.hset(keys.build('done'), { buildId: 'done', client: 'heal', state: 'failed' });
    await redis.zadd(keys.clientActive('heal'), now - 1000, 'done', now - 120_000, 'lost', now - 1000, 'inflight');
    await admitBuild(redis, keys, 'heal', q, 'fresh');
    expect((await redis.zrange(keys.clientActive('heal'), '0', '-1')).sort()).toEqual(['fresh', 'inflight']);
  });

  it('FINISH_LUA counts the limit that ended a build, once, and nothing for other failures', async () => {
    const end = (id: string, details: Record<string, string>) => finishBuild(redis, keys, {
      buildId: id,
      state: 'failed',
      body: { type: 'error', error: { code: details['code'] ?? 'LIMIT_EXCEEDED', message: 'x', retryable: false, details } },
      seq: 1,
    });
    for (const id of ['l1', 'l2', 'l3', 'l4']) await redis.hset(keys.build(id), { buildId: id, client: 'm', state: 'running' });
    await end('l1', { limit: 'stepTimeoutMs' });
    await end('l1', { limit: 'stepTimeoutMs' }); // already ended: not counted again
    await end('l2', { limit: 'memoryBytes' });
    await end('l3', { limit: 'toString' }); // not a limit name: no series for it
    await end('l4', { code: 'EXEC_FAILED', limit: 'memoryBytes' });
    expect(await redis.hgetall(keys.limitedTotals)).toEqual({ stepTimeoutMs: '1', memoryBytes: '1' });
  });
});
