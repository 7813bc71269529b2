import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import type { BuildEvent } from '../../core/build.js';
import { mountsUnder } from '../../core/mounter.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { Freezer } from '../helpers/freezer.js';
import { until } from '../helpers/procs.js';
import { childrenOf, watchContainers, type ContainerWatch } from '../helpers/steps.js';
import { runcContainers, startService, TOKENS, type Proc, type Service, collectResuming, untilLog, watchUntil, workerOf } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';


function nonce(): string {
  return Math.random().toString(36).slice(2);
}

describe('build service: 2 worker processes, real Redis, registry and runc', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let base: string;
  let tmp: string;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-svc-ctx-'));
    svc = await startService({ redisUrl: redis.url, workers: 2, concurrency: 2 });
  });
  afterAll(async () => {
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('runs 6 builds from 3 clients at once; each client sees only its own', async () => {
    const clients = { alice: new BuildliteClient(svc.addr, TOKENS.alice), bob: new BuildliteClient(svc.addr, TOKENS.bob), carol: new BuildliteClient(svc.addr, TOKENS.carol) };
    try {
      const runs = Object.entries(clients).flatMap(([name, c]) =>
        [1, 2].map(async (i) => {
          const ref = `${registry.host}/svc/${name}:b${i}`;
          const { buildId } = await c.submit(
            { dockerfile: `FROM ${base}\nRUN echo ${name}-${i}-${nonce()} > /who\n`, outputs: [{ type: 'registry', refs: [ref] }] },
            tarOf({ 'f.txt': `${name}${i}` }),
          );
          const events = await collectResuming(c, buildId);
          return { name, buildId, last: events.at(-1) };
        }),
      );
      const done = await Promise.all(runs);
      for (const d of done) expect(d.last, JSON.stringify(d.last)).toMatchObject({ type: 'result' });
      for (const [name, c] of Object.entries(clients)) {
        const mine = done.filter((d) => d.name === name).map((d) => d.buildId).sort();
        const listed = (await c.list()).map((b) => b.buildId).sort();
        expect(listed).toEqual(mine);
        expect((await c.list({ state: 'succeeded' })).length).toBe(2);
      }
      const workers = new Set(await Promise.all(done.map(async (d) => (await clients[d.name as 'alice'].get(d.buildId)).worker)));
      expect([...workers].every((w) => w === 'w1' || w === 'w2')).toBe(true);
    } finally {
      for (const c of Object.values(clients)) c.close();
    }
  });

  it('remote CLI build: .dockerignore honoured, symlinks sent as symlinks, second upload skipped, failures exit 1', async () => {
    const ctx = path.join(tmp, 'cli-ctx');
    await mkdir(path.join(ctx, 'sub'), { recursive: true });
    await writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nCOPY . /ctx\nRUN test ! -e /ctx/secret.txt && test -L /ctx/link && test "$(readlink /ctx/link)" = /etc/hostname && cat /ctx/sub/a.txt\n`);
    await writeFile(path.join(ctx, 'sub/a.txt'), 'hello-remote\n');
    await writeFile(path.join(ctx, 'secret.txt'), 'do-not-send\n');
    await writeFile(path.join(ctx, '.dockerignore'), 'secret.txt\n');
    await symlink('/etc/hostname', path.join(ctx, 'link'));
    const ref = `${registry.host}/svc/cli:1`;
    const args = ['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain', '-t', ref, '--push', ctx];
    const r1 = await runCli(args);
    expect(r1.stderr + r1.stdout).toContain('hello-remote');
    expect(r1.code).toBe(0);
    const stored = await readdir(path.join(svc.contexts, 'sha256'));
    const inodes = await Promise.all(stored.map(async (f) => (await stat(path.join(svc.contexts, 'sha256', f))).ino));
    const r2 = await runCli([...args.slice(0, -1), '--quiet', ctx]);
    expect(r2.code).toBe(0);
    // The same context was not uploaded again: every stored context is the very same file (a new upload renames a new inode in).
    expect(await readdir(path.join(svc.contexts, 'sha256'))).toEqual(stored);
    expect(await Promise.all(stored.map(async (f) => (await stat(path.join(svc.contexts, 'sha256', f))).ino))).toEqual(inodes);
    expect(r2.stdout.trim()).toMatch(/^sha256:[a-f0-9]{64}$/);

    await writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nRUN echo about-to-fail; exit 3\n`);
    const r3 = await runCli(args);
    expect(r3.code).toBe(1);
    expect(r3.stderr + r3.stdout).toContain('about-to-fail');
    const wrong = await runCli(['build', '--server', svc.addr, '--token', 'wrong-token-xxxxxxxxxxxxxxxx', ctx]);
    // A refused token is not a failed build: its own exit code.
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toMatch(/token/i);
  });

  it('a client that disconnects mid-build and resumes from its last seq gets every remaining event exactly once', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.bob);
    try {
      const { buildId } = await c.submit(
        { dockerfile: `FROM ${base}\nRUN for i in $(seq 1 25); do echo line-$i-${nonce()}; sleep 0.1; done\n` },
        tarOf({ x: '1' }),
      );
      const first: BuildEvent[] = [];
      for await (const ev of c.watch(buildId, 0)) {
        first.push(ev);
        if (ev.type === 'log') break; // drop the stream mid-build
      }
      const lastSeq = first.at(-1)!.seq;
      const rest = await collectResuming(c, buildId, lastSeq);
      const all = await collectResuming(c, buildId, 0);
      expect(all.at(-1)).toMatchObject({ type: 'result' });
      expect(rest.length).toBeGreaterThan(0);
      expect(rest.map((e) => e.seq)).toEqual(all.filter((e) => e.seq > lastSeq).map((e) => e.seq));
      expect(rest).toEqual(all.filter((e) => e.seq > lastSeq));
      // No gap and no duplicate over the whole stream.
      expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
      expect(all.filter((e) => e.type === 'log').map((e) => (e as { data: string }).data).join('')).toContain('line-25-');
    } finally {
      c.close();
    }
  });

  it('SIGKILL of the worker running a RUN step: the build completes on the other worker; the restarted worker leaves no container or mount', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.carol);
    try {
      const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo start-${nonce()}; sleep 4; echo finished\n` }, tarOf({ y: '1' }));
      const lastSeq = await watchUntil(c, buildId, (ev) => ev.type === 'log' && ev.data.includes('start-'));
      const { id: victimId, proc: victim } = await workerOf(svc, c, buildId);
      expect(await runcContainers(victim.root)).not.toEqual([]);
      await victim.stop('SIGKILL');

      const rest = await collectResuming(c, buildId, lastSeq);
      expect(rest.at(-1), JSON.stringify(rest.slice(-3))).toMatchObject({ type: 'result' });
      const info = await c.get(buildId);
      expect(info.state).toBe('succeeded');
      expect(info.worker).not.toBe(victimId);
      expect(info.attempts).toBeGreaterThanOrEqual(2);
      expect(rest.map((e) => e.seq)).toEqual(rest.map((_, i) => lastSeq + i + 1));

      // Restart on the same state root: its startup sweep removes what the SIGKILL left.
      const again = await svc.startWorker(victimId, victim.root);
      expect(again.output()).toMatch(/startup sweep done/);
      expect(await runcContainers(victim.root)).toEqual([]);
      expect(await mountsUnder(victim.root)).toEqual([]);
    } finally {
      c.close();
    }
  });

  it('kill -9 of the worker running a long RUN, its reaper too, and an immediate restart on its root and id: the startup sweep waits for the dying worker, runs, kills the orphaned step, and the RUN never runs twice at once there', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.carol);
    const [home, other] = svc.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    expect(other).toBeDefined();
    const idOf = (w: Proc) => path.basename(w.root).replace(/^worker-/, '');
    const homeId = idOf(home!);
    // One worker left: the retried build can only go back to the restarted one, on the same root (its own queue).
    await other!.stop('SIGTERM');
    let watch: ContainerWatch | undefined;
    await using freezer = await Freezer.create();
    try {
      const project = `restart-${nonce()}`;
      const first = await c.submit({ dockerfile: `FROM ${base}\nRUN echo home-${nonce()}\n`, project }, tarOf({ r: '0' }));
      expect((await collectResuming(c, first.buildId)).at(-1)).toMatchObject({ type: 'result' });
      // ~9 s: outlives the killed worker's job lock (4 s) and the restart, so an orphan left running would overlap the retry.
      const { buildId } = await c.submit(
        { dockerfile: `FROM ${base}\nRUN echo long-start-${nonce()}; i=0; while [ $i -lt 90 ]; do sleep 0.1; i=$((i+1)); done; echo long-finished\n`, project },
        tarOf({ r: '1' }),
      );
      const lastSeq = await untilLog(c, buildId, 'long-start-');
      expect((await c.get(buildId)).worker).toBe(homeId);
      const [orphan] = await runcContainers(home!.root);
      expect(orphan).toBeDefined();
      const reapers = childrenOf(home!.child.pid!, 'buildlite-reaper');
      expect(reapers).toHaveLength(1);

      // Frozen, then SIGKILLed: the worker stays in /proc with its start time and SIGKILL pending, as a
      // killed worker can for a while; its reaper dies too, as in a kill of everything the worker started.
      watch = watchContainers(home!.root);
      for (const pid of [home!.child.pid!, reapers[0]!]) await freezer.add(pid);
      await freezer.freeze();
      for (const pid of [home!.child.pid!, reapers[0]!]) process.kill(pid, 'SIGKILL');
      const starting = svc.startWorker(homeId, home!.root);
      const again = svc.workers.at(-1)!;
      const procs = path.join(home!.root, 'procs');
      await until('the restarted worker registered on the root', async () => (await readdir(procs)).some((n) => n.startsWith(`${again.child.pid}-`)), 20_000);
      await new Promise((r) => setTimeout(r, 300));
      // It waits for the dying worker rather than skipping its sweep or sweeping under it.
      expect(again.output()).not.toMatch(/startup sweep/);
      await freezer.thaw();
      await starting;

      const sweep = JSON.parse(again.output().split('\n').find((l) => l.includes('startup sweep done'))!) as Record<string, unknown>;
      expect(sweep).toMatchObject({ full: true, waitedFor: 1, containers: 1 });
      expect(await runcContainers(home!.root)).not.toContain(orphan);

      const rest = await collectResuming(c, buildId, lastSeq);
      expect(rest.at(-1), JSON.stringify(rest.slice(-3))).toMatchObject({ type: 'result' });
      const info = await c.get(buildId);
      expect(info).toMatchObject({ state: 'succeeded', worker: homeId });
      expect(info.attempts).toBeGreaterThanOrEqual(2);
      const seen = await watch.stop();
      // The orphan and the retry's container were both seen, never together.
      expect(seen.ids.has(orphan!)).toBe(true);
      expect(seen.ids.size).toBeGreaterThanOrEqual(2);
      expect(seen.most).toBe(1);
      expect(await runcContainers(home!.root)).toEqual([]);
      expect(await mountsUnder(home!.root)).toEqual([]);
    } finally {
      await watch?.stop();
      await freezer.thaw();
      await svc.startWorker(idOf(other!), other!.root);
      c.close();
    }
  });

  it('Redis restarted while jobs wait: no job is lost and workers resume', async () => {
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    const admin = new Redis(redis.url, { maxRetriesPerRequest: null });
    admin.on('error', () => undefined);
    try {
      // 4 slots (2 workers x 2): of 6 builds, at least 2 wait in the queue during the restart.
      const ids = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => (await c.submit({ dockerfile: `FROM ${base}\nRUN echo r${i}-${nonce()}; sleep 1\n` }, tarOf({ z: String(i) }))).buildId),
      );
      expect((await c.list({ state: 'queued' })).length).toBeGreaterThanOrEqual(2);
      // Redis with persistence, as compose.yaml runs it: the queue survives on disk across the restart.
      await admin.save();
      await redis.restart();
      const ends = await Promise.all(ids.map(async (id) => (await collectResuming(c, id)).at(-1)));
      for (const e of ends) expect(e, JSON.stringify(e)).toMatchObject({ type: 'result' });
      // And the workers still take new jobs after the restart.
      const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo after-${nonce()}\n` }, tarOf({ z: 'after' }));
      expect((await collectResuming(c, buildId)).at(-1)).toMatchObject({ type: 'result' });
    } finally {
      admin.disconnect();
      c.close();
    }
  });
});
