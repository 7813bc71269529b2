import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { runcContainers, startService, TOKENS, type Service, collectOnce } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';


/** Every string Redis holds under any key (hashes, strings, lists, sets, streams). */
async function everythingIn(redis: Redis): Promise<string> {
  const parts: string[] = [];
  for (const key of await redis.keys('*')) {
    const type = await redis.type(key);
    if (type === 'string') parts.push((await redis.get(key)) ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
    else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
    else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
    else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
    else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
  }
  return parts.join('\n');
}

describe('serve --embedded-worker: secrets in memory only, cancel reaches the RUN, metrics, SIGTERM drain', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let base: string;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    svc = await startService({ redisUrl: redis.url, workers: 0, embedded: true, concurrency: 2, metrics: true });
  });
  afterAll(async () => {
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
  });

  it('a build with a secret uses it, and its value is nowhere in Redis, the events or the logs', async () => {
    const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    const r = new Redis(redis.url);
    try {
      const { buildId } = await c.submit(
        {
          dockerfile: `FROM ${base}\nRUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok | wc -c)" -gt 10 && echo secret-length-ok\n`,
          secrets: [{ id: 'tok', value: Buffer.from(secret) }],
        },
        tarOf({ a: '1' }),
      );
      const events = await collectOnce(c, buildId);
      expect(events.at(-1), JSON.stringify(events.at(-1))).toMatchObject({ type: 'result' });
      expect(JSON.stringify(events)).toContain('secret-length-ok');
      expect(JSON.stringify(events)).not.toContain(secret);
      expect(await everythingIn(r)).not.toContain(secret);
      expect(svc.api.output()).not.toContain(secret);
    } finally {
      r.disconnect();
      c.close();
    }
  });

  it('cancel stops a running RUN step and leaves no container', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.bob);
    try {
      const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo going-${Math.random()}; sleep 60\n` }, tarOf({ b: '1' }));
      let last = 0;
      for await (const ev of c.watch(buildId, 0)) {
        last = ev.seq;
        if (ev.type === 'log' && ev.data.includes('going-')) break;
      }
      await c.cancel(buildId);
      const rest = await collectOnce(c, buildId, last);
      expect(rest.at(-1)).toMatchObject({ type: 'error', error: { code: 'CANCELLED' } });
      expect((await c.get(buildId)).state).toBe('cancelled');
      expect(await runcContainers(svc.api.root)).toEqual([]);
    } finally {
      c.close();
    }
  });

  it('serves Prometheus metrics and lists its worker', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.admin);
    try {
      const text = await (await fetch(`http://${svc.metricsAddr}/metrics`)).text();
      expect(text).toMatch(/^buildlite_builds_total\{state="succeeded"\} 1$/m);
      expect(text).toMatch(/^buildlite_builds_total\{state="cancelled"\} 1$/m);
      expect(text).toMatch(/^buildlite_queue_depth\{state="waiting"\} 0$/m);
      expect(text).toMatch(/^buildlite_step_duration_seconds_count \d+$/m);
      expect(text).toContain('buildlite_cache_hit_ratio');
      const workers = await c.listWorkers();
      expect(workers.map((w) => w.id)).toContain('embedded');
      const du = await c.diskUsage();
      expect(du.map((d) => d.worker)).toContain('embedded');
      expect(du[0]!.total).toBeGreaterThan(0);
    } finally {
      c.close();
    }
  });

  it('SIGTERM drains: the process exits cleanly and deregisters its worker', async () => {
    const r = new Redis(redis.url);
    try {
      await svc.api.stop('SIGTERM');
      expect(svc.api.child.exitCode).toBe(0);
      expect(svc.api.output()).toMatch(/worker stopped/);
      expect(await r.hkeys(`${svc.prefix}:workers`)).not.toContain('embedded');
    } finally {
      r.disconnect();
    }
  });
});
