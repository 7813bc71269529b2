/**
 * Steering service builds from the CLI, as a CI pipeline does: Ctrl-C of a
 * `build --server` cancels the build before the client exits (nothing is
 * pushed), `--detach` then `watch` streams every event once, and ls,
 * inspect, cancel, workers, du and prune work against a running service
 * (real Redis, gRPC over TCP, two worker processes, a real registry).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient, type BuildInfo, type WorkerInfo } from '../../api/index.js';
import type { BuildEvent } from '../../core/build.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { spawnCli } from '../helpers/cli.js';
import { runcContainers, startService, TOKENS, type Service } from '../helpers/service.js';

function nonce(): string {
  return Math.random().toString(36).slice(2);
}

/** Status of GET /v2/<repo>/manifests/<tag> (404: never pushed). */
function manifestStatus(host: string, repo: string, tag: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: host.split(':')[0], port: Number(host.split(':')[1]), path: `/v2/${repo}/manifests/${tag}`, method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('steering service builds from the CLI', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let base: string;
  let tmp: string;
  let remote: string[];
  let admin: BuildliteClient;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-control-'));
    svc = await startService({ redisUrl: redis.url, workers: 2, concurrency: 1 });
    remote = ['--server', svc.addr, '--token', TOKENS.alice];
    admin = new BuildliteClient(svc.addr, TOKENS.admin);
  });
  afterAll(async () => {
    admin?.close();
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function context(name: string, dockerfile: string): Promise<string> {
    const dir = path.join(tmp, name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'Dockerfile'), dockerfile);
    await writeFile(path.join(dir, 'f.txt'), name);
    return dir;
  }

  async function containersOfWorkers(): Promise<string[]> {
    return (await Promise.all(svc.workers.map((w) => runcContainers(w.root)))).flat();
  }

  it('Ctrl-C of build --server cancels the build on the server before exiting: steps gone within 2 s, nothing pushed, state cancelled', async () => {
    const tag = nonce();
    const ctx = await context('ctrl-c', `FROM ${base}\nRUN echo started-${tag}; sleep 60; echo finished\n`);
    const client = spawnCli(['build', ...remote, '--progress', 'plain', '-t', `${registry.host}/ctl/cancelled:${tag}`, '--push', ctx]);
    const [, buildId] = await client.waitFor(/build ([0-9a-f-]{36}) on /);
    await client.waitFor(new RegExp(`^#\\d+ started-${tag}$`, 'm'));
    expect(await containersOfWorkers()).not.toEqual([]);

    client.child.kill('SIGINT');
    const exit = await new Promise<number | null>((resolve) => client.child.once('exit', (code) => resolve(code)));
    const exitedAt = Date.now();
    expect(exit).toBe(130);
    expect(client.output()).toContain(`cancelling build ${buildId}`);
    // A cancel is not a failure: the step is CANCELED, no failure report, no Dockerfile excerpt.
    expect(client.output()).toMatch(/^#\d+ CANCELED$/m);
    expect(client.output()).toMatch(/^CANCELED: the build was cancelled$/m);
    expect(client.output()).not.toContain('Dockerfile:2');
    // Cancelled on the server before the client exited, not after.
    expect((await admin.get(buildId!)).state).toBe('cancelled');
    await until('the step containers to go', async () => ((await containersOfWorkers()).length === 0 ? true : undefined), 2000);
    expect(Date.now() - exitedAt).toBeLessThan(2500);
    // Nothing is pushed, then or later.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await manifestStatus(registry.host, 'ctl/cancelled', tag)).toBe(404);
    expect(client.output()).not.toMatch(/^#\d+ finished$/m);
  });

  it('--detach prints the build id and exits; watch streams every event exactly once, and from a seq exactly the rest', async () => {
    const ctx = await context('detach', `FROM ${base}\nRUN for i in 1 2 3 4 5; do echo line-$i-${nonce()}; sleep 0.2; done\n`);
    const d = await runCli(['build', ...remote, '--detach', ctx]);
    expect(d.code, d.stderr).toBe(0);
    const buildId = d.stdout.trim();
    expect(buildId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    const w = await runCli(['watch', ...remote, '--progress', 'json', buildId]);
    expect(w.code, w.stderr).toBe(0);
    const lines = w.stdout.trim().split('\n').map((l) => JSON.parse(l) as BuildEvent & { buildId?: string; type: string });
    expect(lines[0]).toEqual({ type: 'build', buildId, server: svc.addr });
    const events = lines.slice(1);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.every((e) => e.buildId === buildId)).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'result' });
    expect(events.filter((e) => e.type === 'log').map((e) => (e as { data: string }).data).join('')).toContain('line-5-');

    const k = Math.floor(events.length / 2);
    const rest = await runCli(['attach', ...remote, '--progress', 'json', '--from-seq', String(k), buildId]);
    expect(rest.code, rest.stderr).toBe(0);
    const after = rest.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l) as BuildEvent);
    expect(after).toEqual(events.slice(k));

    const inspect = await runCli(['inspect', ...remote, '--format', 'json', buildId]);
    const info = JSON.parse(inspect.stdout) as BuildInfo;
    expect(info).toMatchObject({ buildId, state: 'succeeded', client: 'alice', imageDigest: (events.at(-1) as { result: { imageDigest: string } }).result.imageDigest });
    expect(info.finishedAt).toBeGreaterThanOrEqual(info.startedAt);
    const text = await runCli(['inspect', ...remote, buildId]);
    expect(text.stdout).toMatch(/^State:\s+succeeded$/m);
    expect(text.stdout).toContain(info.imageDigest);
  });

  it('ls, inspect, cancel and workers against the running service; ids in plain output and in --metadata-file', async () => {
    const meta = path.join(tmp, 'meta.json');
    const ok = await runCli(['build', ...remote, '--progress', 'plain', '--metadata-file', meta, await context('ls-ok', `FROM ${base}\nRUN echo ok-${nonce()}\n`)]);
    expect(ok.code, ok.stderr).toBe(0);
    const [, okId] = /build ([0-9a-f-]{36}) on /.exec(ok.stderr) ?? [];
    expect(JSON.parse(await readFile(meta, 'utf8'))).toMatchObject({ build: { id: okId, server: svc.addr } });

    // Both workers busy (concurrency 1 each), so a third build waits in the queue.
    const sleepers = await Promise.all(
      [1, 2].map(async (i) => (await runCli(['build', ...remote, '--detach', await context(`sleeper-${i}`, `FROM ${base}\nRUN echo s${i}-${nonce()}; sleep 60\n`)])).stdout.trim()),
    );
    const queued = (await runCli(['build', ...remote, '--detach', await context('queued', `FROM ${base}\nRUN echo q-${nonce()}\n`)])).stdout.trim();
    const running = await until('both sleepers to run', async () => {
      const ws = JSON.parse((await runCli(['workers', ...remote, '--format', 'json'])).stdout) as WorkerInfo[];
      return ws.flatMap((w) => w.builds).length === 2 ? ws : undefined;
    }, 20_000);
    expect(running.map((w) => w.id).sort(), JSON.stringify(running)).toEqual(['w1', 'w2']);
    for (const w of running) expect(w).toMatchObject({ alive: true, platform: 'linux/amd64', concurrency: 1, active: 1 });
    expect(running.flatMap((w) => w.builds).sort(), JSON.stringify({ running, sleepers, queued })).toEqual([...sleepers].sort());
    const table = (await runCli(['workers', ...remote])).stdout;
    expect(table).toMatch(/^WORKER\s+HOST\s+PLATFORM\s+STATUS\s+BUILDS\s+RUNNING\s+CACHE\s+LAST HEARTBEAT$/m);
    expect(table).toMatch(/^w1\s+\S+\s+linux\/amd64\s+alive\s+1\/1\s/m);

    const queuedNow = (await runCli(['ls', ...remote, '--state', 'queued', '-q'])).stdout.trim().split('\n');
    expect(queuedNow).toContain(queued);
    const mine = JSON.parse((await runCli(['ls', ...remote, '--format', 'json'])).stdout) as BuildInfo[];
    expect(mine.map((b) => b.buildId)).toEqual(expect.arrayContaining([okId, ...sleepers, queued]));
    expect(mine.every((b) => b.client === 'alice')).toBe(true);
    // Another client sees none of them; an admin sees them with --client.
    const bobs = JSON.parse((await runCli(['ls', '--server', svc.addr, '--token', TOKENS.bob, '--format', 'json'])).stdout) as BuildInfo[];
    expect(bobs.map((b) => b.buildId)).not.toContain(okId);
    const byAdmin = (await runCli(['ls', '--server', svc.addr, '--token', TOKENS.admin, '--client', 'alice', '-q'])).stdout;
    expect(byAdmin).toContain(okId);
    expect((await runCli(['inspect', '--server', svc.addr, '--token', TOKENS.bob, okId!])).code).toBe(1);

    // The queued build never starts; the running ones stop and their steps are killed.
    const c1 = await runCli(['cancel', ...remote, queued]);
    expect(c1.code, c1.stderr).toBe(0);
    expect(c1.stdout.trim()).toBe(`${queued} cancelled`);
    expect((await admin.get(queued)).startedAt).toBe(0);
    const c2 = await runCli(['cancel', ...remote, ...sleepers]);
    expect(c2.code, c2.stderr).toBe(0);
    expect(c2.stdout.trim().split('\n').sort()).toEqual(sleepers.map((id) => `${id} cancelled`).sort());
    await until('the sleepers\' containers to go', async () => ((await containersOfWorkers()).length === 0 ? true : undefined), 5000);
    const again = await runCli(['cancel', ...remote, okId!]);
    expect(again.stdout.trim()).toBe(`${okId} had already ended: succeeded`);
    const cancelled = (await runCli(['ls', ...remote, '--state', 'cancelled', '-q'])).stdout;
    for (const id of [queued, ...sleepers]) expect(cancelled).toContain(id);
  });

  it('BUILDLITE_SERVER and BUILDLITE_TOKEN make build, ls, du and prune remote; prune needs an admin token', async () => {
    const env = { BUILDLITE_SERVER: svc.addr, BUILDLITE_TOKEN: TOKENS.carol };
    const b = await runCli(['build', '--progress', 'plain', await context('env', `FROM ${base}\nRUN echo env-${nonce()}\n`)], { env });
    expect(b.code, b.stderr).toBe(0);
    const [, id] = /build ([0-9a-f-]{36}) on /.exec(b.stderr) ?? [];
    expect((await admin.get(id!)).client).toBe('carol');
    expect((await runCli(['ls', '-q'], { env })).stdout).toContain(id);

    const du = await runCli(['du', '--format', 'json'], { env });
    expect(du.code, du.stderr).toBe(0);
    const usage = JSON.parse(du.stdout) as { workers: Array<{ worker: string; total: number }> };
    expect(usage.workers.map((w) => w.worker).sort()).toEqual(['w1', 'w2']);
    expect(usage.workers.some((w) => w.total > 0)).toBe(true);

    const denied = await runCli(['prune', '--force', '--all'], { env });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/admin/);
    const pruned = await runCli(['prune', '--force', '--all'], { env: { ...env, BUILDLITE_TOKEN: TOKENS.admin } });
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/^w1: reclaimed /m);
    expect(pruned.stdout).toMatch(/^Total reclaimed: .* on 2 worker\(s\)$/m);
  });
});
