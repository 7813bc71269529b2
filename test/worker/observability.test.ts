import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { collectResuming, eventually, logLines, startService, TOKENS, watchUntil, workerOf, type Service } from '../helpers/service.js';
import { sample, sampleSum, scrape } from '../helpers/prom.js';
import { tarOf } from '../helpers/tar.js';

function nonce(): string {
  return Math.random().toString(36).slice(2);
}

describe('operator view: metrics of the API and the workers, logs of lost workers (2 worker processes, real Redis, registry and runc)', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let base: string;
  const workerTexts = () => Promise.all(svc.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).map((w) => scrape(w.metricsAddr)));

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    svc = await startService({ redisUrl: redis.url, workers: 2, metrics: true });
  });
  afterAll(async () => {
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
  });

  it('builds move the histograms of the workers and the totals of the API; the API sees both workers alive', async () => {
    const api0 = await scrape(svc.metricsAddr);
    expect(sample(api0, 'buildlite_workers_alive')).toBe(2);
    const w0 = await workerTexts();
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      const dockerfiles = [`RUN echo ok-${nonce()}`, `RUN echo ok-${nonce()}; sleep 0.5`, `RUN echo bad-${nonce()}; exit 3`].map((run) => `FROM ${base}\n${run}\n`);
      const ids = await Promise.all(dockerfiles.map(async (dockerfile, i) => (await c.submit({ dockerfile }, tarOf({ n: String(i) }))).buildId));
      const ends = await Promise.all(ids.map(async (id) => (await collectResuming(c, id)).at(-1)));
      expect(ends.map((e) => e?.type)).toEqual(['result', 'result', 'error']);
      for (const id of ids) expect((await c.get(id)).attempts).toBe(1);
    } finally {
      c.close();
    }

    const api1 = await scrape(svc.metricsAddr);
    expect(sample(api1, 'buildlite_builds_total', { state: 'succeeded' })).toBe((sample(api0, 'buildlite_builds_total', { state: 'succeeded' }) ?? 0) + 2);
    expect(sample(api1, 'buildlite_builds_total', { state: 'failed' })).toBe((sample(api0, 'buildlite_builds_total', { state: 'failed' }) ?? 0) + 1);
    const w1 = await workerTexts();
    for (const [outcome, n] of [['succeeded', 2], ['failed', 1]] as const) {
      for (const hist of ['buildlite_build_duration_seconds_count', 'buildlite_build_queue_wait_seconds_count']) {
        expect(sampleSum(w1, hist, { outcome }) - sampleSum(w0, hist, { outcome }), `${hist} ${outcome}`).toBe(n);
      }
    }
    // The 0.5 s sleep alone puts the succeeded builds' summed duration above it.
    expect(sampleSum(w1, 'buildlite_build_duration_seconds_sum', { outcome: 'succeeded' }) - sampleSum(w0, 'buildlite_build_duration_seconds_sum', { outcome: 'succeeded' })).toBeGreaterThan(0.5);
    // What the workers count of their own builds adds up to what the API reads for the service.
    expect(sampleSum(w1, 'buildlite_builds_total', { state: 'succeeded' }) - sampleSum(w0, 'buildlite_builds_total', { state: 'succeeded' })).toBe(2);
  });

  it('a registry that is down: each attempt is retried and counted, with the same attempt number in the logs, the warnings and BuildInfo', async () => {
    const down = `127.0.0.1:${await freePort()}`;
    const w0 = await workerTexts();
    const c = new BuildliteClient(svc.addr, TOKENS.bob);
    try {
      const { buildId } = await c.submit({ dockerfile: `FROM ${down}/gone/base:1\nRUN true\n` }, tarOf({ r: nonce() }));
      const events = await collectResuming(c, buildId);
      expect(events.at(-1), JSON.stringify(events.at(-1))).toMatchObject({ type: 'error', error: { code: 'REGISTRY' } });
      const info = await c.get(buildId);
      expect(info).toMatchObject({ state: 'failed', attempts: 3 });
      const warnings = events.flatMap((e) => (e.type === 'warning' ? [e.message] : []));
      expect(warnings.filter((m) => /^attempt \d failed/.test(m)).map((m) => m.slice(0, 9))).toEqual(['attempt 1', 'attempt 2']);
      expect(warnings.filter((m) => m.startsWith('build restarted')).map((m) => /attempt (\d)/.exec(m)![1])).toEqual(['2', '3']);
      await eventually('the last attempt to be logged', async () => svc.workers.some((w) => logLines(w.output()).some((l) => l['buildId'] === buildId && l['msg'] === 'build failed')));
      const started = svc.workers.flatMap((w) => logLines(w.output())).filter((l) => l['buildId'] === buildId && l['msg'] === 'build started');
      expect(started.map((l) => l['attempt']).sort()).toEqual([1, 2, 3]);
    } finally {
      c.close();
    }
    const w1 = await workerTexts();
    expect(sampleSum(w1, 'buildlite_builds_retried_total', { code: 'REGISTRY' }) - sampleSum(w0, 'buildlite_builds_retried_total', { code: 'REGISTRY' })).toBe(2);
    expect(sampleSum(w1, 'buildlite_builds_moved_total')).toBe(0);
  });

  it('SIGKILL of a worker mid-build: the loss and the take-over are logged and counted, with one attempt number everywhere', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.carol);
    try {
      const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo start-${nonce()}; sleep 4; echo finished\n` }, tarOf({ k: '1' }));
      const lastSeq = await watchUntil(c, buildId, (ev) => ev.type === 'log' && ev.data.includes('start-'));
      const { id: victimId, proc: victim } = await workerOf(svc, c, buildId);
      const survivor = svc.workers.find((w) => w !== victim)!;
      const survivorId = survivor.root.replace(/.*worker-/, '');
      const movedBefore = sample(await scrape(survivor.metricsAddr), 'buildlite_builds_moved_total');
      expect(movedBefore).toBe(0);
      await victim.waitFor(new RegExp(`"buildId":"${buildId}".*"msg":"build started"`));
      expect(logLines(victim.output()).find((l) => l['buildId'] === buildId && l['msg'] === 'build started')).toMatchObject({ attempt: 1 });
      await victim.stop('SIGKILL');

      const rest = await collectResuming(c, buildId, lastSeq);
      expect(rest.at(-1), JSON.stringify(rest.slice(-3))).toMatchObject({ type: 'result' });
      const info = await c.get(buildId);
      expect(info).toMatchObject({ state: 'succeeded', worker: survivorId, attempts: 2 });
      expect(rest.filter((e) => e.type === 'warning').map((e) => (e as { message: string }).message)).toContain(`build restarted (attempt 2) on worker ${survivorId}`);

      // The worker logs the end right after publishing it: the client may see the result first.
      await survivor.waitFor(new RegExp(`"buildId":"${buildId}".*"msg":"build succeeded"`));
      const mine = logLines(survivor.output()).filter((l) => l['buildId'] === buildId);
      // The survivor noticed the heartbeat expire and named the build it lost with the worker...
      expect(mine.find((l) => String(l['msg']).startsWith('worker lost'))).toMatchObject({ level: 40, lostWorker: victimId });
      // ...then took the build over: logged with the lost worker and the attempt BuildInfo shows.
      expect(mine.find((l) => l['msg'] === 'took over the build of a lost worker')).toMatchObject({ level: 40, lostWorker: victimId, attempt: info.attempts });
      expect(mine.filter((l) => l['msg'] === 'build started' || l['msg'] === 'build succeeded').map((l) => l['attempt'])).toEqual([2, 2]);

      const w = await scrape(survivor.metricsAddr);
      expect(sample(w, 'buildlite_builds_moved_total')).toBe(1);
      expect(sample(w, 'buildlite_builds_retried_total', { code: 'INTERNAL' })).toBeUndefined();
      await eventually('the API to see one worker alive', async () => sample(await scrape(svc.metricsAddr), 'buildlite_workers_alive') === 1);
    } finally {
      c.close();
    }
  });
});
