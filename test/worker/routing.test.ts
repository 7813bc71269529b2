import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import type { BuildEvent } from '../../core/build.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startService, TOKENS, type Service, collectResuming, untilLog } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';


async function until(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function nonce(): string {
  return Math.random().toString(36).slice(2);
}

/** Terminal events of a whole stream: a build's result is published exactly once. */
function terminals(events: BuildEvent[]): BuildEvent[] {
  return events.filter((e) => e.type === 'result' || e.type === 'error');
}

describe('build routing and lost workers: cache locality, lock loss, takeover of a dead worker\'s queue', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let base: string;
  let r: Redis;
  let c: BuildliteClient;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    // Concurrency 1: "free" and "busy" are one build apart.
    svc = await startService({ redisUrl: redis.url, workers: 2, concurrency: 1 });
    r = new Redis(redis.url);
    c = new BuildliteClient(svc.addr, TOKENS.alice);
  });
  afterAll(async () => {
    c?.close();
    r?.disconnect();
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
  });

  const record = (id: string) => r.hgetall(`${svc.prefix}:build:${id}`);
  const idle = (id: string) => until(`worker ${id} idle`, async () => (await c.listWorkers()).some((w) => w.id === id && w.alive && w.active === 0));

  async function build(dockerfile: string, project: string): Promise<{ buildId: string; events: BuildEvent[]; worker: string; queue: string }> {
    const { buildId } = await c.submit({ dockerfile, project }, tarOf({ p: project }));
    const events = await collectResuming(c, buildId);
    const rec = await record(buildId);
    return { buildId, events, worker: rec['worker'] ?? '', queue: rec['queue'] ?? '' };
  }

  it('routes builds of a project to the worker that built it last while it is free, else to any worker', async () => {
    const project = `proj-${nonce()}`;
    const first = await build(`FROM ${base}\nRUN echo first-${nonce()}\n`, project);
    expect(first.events.at(-1)).toMatchObject({ type: 'result' });
    expect(first.queue).toBe('builds');
    const home = first.worker;
    expect(['w1', 'w2']).toContain(home);

    for (let i = 0; i < 3; i++) {
      await idle(home);
      const next = await build(`FROM ${base}\nRUN echo again-${i}-${nonce()}\n`, project);
      expect(next.events.at(-1)).toMatchObject({ type: 'result' });
      // Routed to the home worker's own queue, and run there.
      expect(next.queue).toBe(`builds.w.${home}`);
      expect(next.worker).toBe(home);
    }

    // Home busy: the next build of the project goes to the shared queue and the other worker.
    await idle(home);
    const { buildId: busyId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo busy-${nonce()}; sleep 3\n`, project }, tarOf({ p: 'busy' }));
    await untilLog(c, busyId, 'busy-');
    expect((await record(busyId))['worker']).toBe(home);
    await until('home reported busy', async () => (await c.listWorkers()).some((w) => w.id === home && w.active === 1));
    const other = await build(`FROM ${base}\nRUN echo other-${nonce()}\n`, project);
    expect(other.events.at(-1)).toMatchObject({ type: 'result' });
    expect(other.queue).toBe('builds');
    expect(other.worker).not.toBe(home);
    expect((await collectResuming(c, busyId)).at(-1)).toMatchObject({ type: 'result' });
  });

  it('a worker that loses its job lock stops that build and never publishes; the result is published exactly once', async () => {
    const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo lock-${nonce()}; sleep 5; echo lock-done\n`, project: `lock-${nonce()}` }, tarOf({ l: '1' }));
    await untilLog(c, buildId, 'lock-');
    const rec = await record(buildId);
    const loser = rec['worker']!;
    const lockKey = `${svc.prefix}:bull:${rec['queue']}:${buildId}:lock`;
    expect(await r.exists(lockKey)).toBe(1);
    // What an expired lock looks like to BullMQ: renewal fails, and the stalled check hands the job out again.
    await r.del(lockKey);

    const events = await collectResuming(c, buildId);
    expect(terminals(events), JSON.stringify(terminals(events))).toHaveLength(1);
    expect(events.at(-1)).toMatchObject({ type: 'result' });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const after = await record(buildId);
    expect(after['state']).toBe('succeeded');
    expect(Number(after['attempts'])).toBeGreaterThanOrEqual(2);
    const loserProc = svc.workers.find((w) => w.root.endsWith(`worker-${loser}`))!;
    await loserProc.waitFor(/lost the job lock: stopped the build without publishing a result/, 15_000);
    // The restarted attempt ran the step to its end; the stopped one never printed its last line.
    const logs = events.filter((e) => e.type === 'log').map((e) => (e as { data: string }).data).join('');
    expect(logs.match(/lock-done/g)).toHaveLength(1);
    // Nothing was written after the result (by the loser, late): the stream ends with it.
    await new Promise((res) => setTimeout(res, 1000));
    expect((await r.xlen(`${svc.prefix}:events:${buildId}`))).toBe(events.length);
  });

  it("a live worker adopts a dead worker's own queue and runs the build that was waiting or running there", async () => {
    const project = `adopt-${nonce()}`;
    const first = await build(`FROM ${base}\nRUN echo adopt-first-${nonce()}\n`, project);
    expect(first.events.at(-1)).toMatchObject({ type: 'result' });
    const victimId = first.worker;
    const survivor = victimId === 'w1' ? 'w2' : 'w1';
    await idle(victimId);
    // Routed to the victim's own queue (it is free), then the victim dies mid-RUN.
    const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo adopt-run-${nonce()}; sleep 2; echo adopted-done\n`, project }, tarOf({ a: '2' }));
    const lastSeq = await untilLog(c, buildId, 'adopt-run-');
    expect(await record(buildId)).toMatchObject({ queue: `builds.w.${victimId}`, worker: victimId });
    const victim = svc.workers.find((w) => w.root.endsWith(`worker-${victimId}`) && w.child.exitCode === null)!;
    await victim.stop('SIGKILL');

    const rest = await collectResuming(c, buildId, lastSeq);
    expect(rest.at(-1), JSON.stringify(rest.slice(-3))).toMatchObject({ type: 'result' });
    expect(terminals(rest)).toHaveLength(1);
    const rec = await record(buildId);
    expect(rec).toMatchObject({ state: 'succeeded', queue: `builds.w.${victimId}`, worker: survivor });
    const survivorProc = svc.workers.find((w) => w.root.endsWith(`worker-${survivor}`))!;
    expect(survivorProc.output()).toContain("adopting a dead worker's queue");
    expect(survivorProc.output()).toContain(`"dead":"${victimId}"`);
    // Once drained, the dead worker is forgotten.
    await until('dead worker deregistered', async () => !(await c.listWorkers()).some((w) => w.id === victimId));
  });

  it('SIGTERM drains a worker: a build that outlasts the grace period is handed back and finishes on another worker', async () => {
    const fresh = await svc.startWorker('w3');
    const live = svc.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    expect(live.length).toBeGreaterThanOrEqual(2);
    const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo drain-${nonce()}; sleep 6; echo drained-done\n`, project: `drain-${nonce()}` }, tarOf({ d: '1' }));
    const lastSeq = await untilLog(c, buildId, 'drain-');
    const runner = (await record(buildId))['worker']!;
    const proc = live.find((w) => w.root.endsWith(`worker-${runner}`))!;
    // The harness gives workers --drain-seconds 5: shorter than the step.
    await proc.stop('SIGTERM');
    expect(proc.child.exitCode).toBe(0);
    expect(proc.output()).toContain('draining: handing the build back to the queue');

    const rest = await collectResuming(c, buildId, lastSeq);
    expect(rest.at(-1), JSON.stringify(rest.slice(-3))).toMatchObject({ type: 'result' });
    expect(terminals(rest)).toHaveLength(1);
    const rec = await record(buildId);
    expect(rec['state']).toBe('succeeded');
    expect(rec['worker']).not.toBe(runner);
    expect([fresh, ...live].some((w) => w.root.endsWith(`worker-${rec['worker']}`))).toBe(true);
  });
});
