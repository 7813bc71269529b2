import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import type { BuildEvent } from '../../core/build.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { collectResuming, eventually, startService, TOKENS, watchUntil, workerOf, type Service } from '../helpers/service.js';
import { sample, scrape } from '../helpers/prom.js';
import { tarOf } from '../helpers/tar.js';

const QUEUED = 'qa-token-0123456789abcdef000';
const REFUSED = 'qr-token-0123456789abcdef000';
const RATED = 'rl-token-0123456789abcdef000';

function nonce(): string {
  return Math.random().toString(36).slice(2);
}

const isWaiting = (ev: BuildEvent) => ev.type === 'warning' && ev.message.startsWith('waiting:');

/**
 * Per-client quotas on a running service: the quotas come from the tokens
 * file, the builds run on real worker processes (runc, a real registry for
 * the base image), and Redis is the only thing API and workers share.
 */
describe('client quotas (real serve and worker processes, real Redis, registry and runc)', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let conn: Redis;
  let svc: Service;
  let base: string;
  let ctx: string;
  const clients: BuildliteClient[] = [];
  const client = (token: string) => {
    const c = new BuildliteClient(svc.addr, token);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    conn = new Redis(redis.url);
    // One worker with two slots: a build waiting for its client's quota must leave the second slot to others.
    svc = await startService({
      redisUrl: redis.url,
      workers: 1,
      concurrency: 2,
      metrics: true,
      tokens: [
        `{ token: ${QUEUED}, client: qa, quota: { max-concurrent-builds: 1 } }`,
        `{ token: ${REFUSED}, client: qr, quota: { max-concurrent-builds: 1, over-quota: refuse } }`,
        `{ token: ${RATED}, client: rl, quota: { max-submissions-per-minute: 3 } }`,
      ],
    });
    ctx = await mkdtemp(path.join(os.tmpdir(), 'bl-quotas-'));
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    conn?.disconnect();
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
    if (ctx) await rm(ctx, { recursive: true, force: true });
  });

  it("policy queue: a client's extra build waits while another client's build starts and finishes, and starts once the client's first build ends", async () => {
    const qa = client(QUEUED);
    const bob = client(TOKENS.bob);
    const a1 = (await qa.submit({ dockerfile: `FROM ${base}\nRUN sleep 8; echo a1-${nonce()}\n` }, tarOf({ n: '1' }))).buildId;
    await eventually('a1 running', async () => (await qa.get(a1)).state === 'running');
    const a2 = (await qa.submit({ dockerfile: `FROM ${base}\nRUN echo a2-${nonce()}\n` }, tarOf({ n: '2' }))).buildId;
    await watchUntil(qa, a2, isWaiting);
    expect(await qa.get(a2)).toMatchObject({ state: 'queued', waiting: 'client qa is at its limit of 1 concurrent build' });

    // Why it waits, in inspect and ls.
    const remote = ['--server', svc.addr, '--token', QUEUED];
    const inspect = await runCli(['inspect', ...remote, a2]);
    expect(inspect.stdout).toMatch(/^State: +queued$/m);
    expect(inspect.stdout).toMatch(/^Waiting: +client qa is at its limit of 1 concurrent build$/m);
    expect((await runCli(['ls', ...remote])).stdout).toMatch(new RegExp(`^${a2} +qa +queued \\(quota\\) `, 'm'));

    // Bob's build takes the worker's other slot and finishes while a2 still waits and a1 still runs.
    const b1 = (await bob.submit({ dockerfile: `FROM ${base}\nRUN echo b1-${nonce()}\n` }, tarOf({ n: '3' }))).buildId;
    expect((await collectResuming(bob, b1)).at(-1)).toMatchObject({ type: 'result' });
    expect((await qa.get(a2)).state).toBe('queued');
    expect((await qa.get(a1)).state).toBe('running');

    // a1 ends; a2 starts after it and succeeds. Its stream warned once.
    const a2Events = await collectResuming(qa, a2);
    expect(a2Events.at(-1)).toMatchObject({ type: 'result' });
    const [i1, i2] = [await qa.get(a1), await qa.get(a2)];
    expect(i1.state).toBe('succeeded');
    expect(i2.startedAt).toBeGreaterThanOrEqual(i1.finishedAt);
    expect(i2.waiting).toBeUndefined();
    expect(a2Events.filter(isWaiting).map((e) => (e as { message: string }).message)).toEqual(['waiting: client qa is at its limit of 1 concurrent build']);
    // Nothing of the client's quota state is left once its builds are over.
    expect(await conn.hgetall(`${svc.prefix}:client:qa:slots`)).toEqual({});
    expect(await conn.zcard(`${svc.prefix}:client:qa:active`)).toBe(0);
  });

  it('policy refuse: the extra submit is refused with the message, before its context is uploaded', async () => {
    const qr = client(REFUSED);
    const r1 = (await qr.submit({ dockerfile: `FROM ${base}\nRUN sleep 60\n` }, tarOf({ n: '4' }))).buildId;
    await expect(qr.submit({ dockerfile: `FROM ${base}\nRUN true\n` }, tarOf({ n: '5' }))).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'client qr has 1 build queued or running: the limit is 1' });

    const storedBefore = await readdir(path.join(svc.contexts, 'sha256'));
    await writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nRUN true\n`);
    await writeFile(path.join(ctx, 'unique'), nonce());
    const cli = await runCli(['build', '--server', svc.addr, '--token', REFUSED, '--progress', 'plain', ctx]);
    expect(cli.stderr).toBe('error: client qr has 1 build queued or running: the limit is 1\n');
    expect(cli.code).toBe(1);
    expect(await readdir(path.join(svc.contexts, 'sha256'))).toEqual(storedBefore);

    // Once r1 ends (here: cancelled), there is room again.
    await qr.cancel(r1);
    await eventually('r1 cancelled', async () => (await qr.get(r1)).state === 'cancelled');
    const r3 = (await qr.submit({ dockerfile: `FROM ${base}\nRUN echo r3-${nonce()}\n` }, tarOf({ n: '6' }))).buildId;
    expect((await collectResuming(qr, r3)).at(-1)).toMatchObject({ type: 'result' });
  });

  it('the submission rate: the 4th submit within a minute is refused, saying when to retry; other clients are not held back', async () => {
    const rl = client(RATED);
    for (let i = 0; i < 3; i++) await rl.submit({ dockerfile: 'FROM scratch\n' }, tarOf({ i: String(i) }));
    const err = await rl.submit({ dockerfile: 'FROM scratch\n' }, tarOf({ i: '4' })).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(err!.message).toMatch(/^client rl submitted 3 builds in the last minute: the limit is 3 a minute; retry in ([1-5]?\d|60)s$/);
    await client(TOKENS.carol).submit({ dockerfile: 'FROM scratch\n' }, tarOf({ i: '5' }));
  });

  it('quota refusals and waits are counted', async () => {
    const text = await scrape(svc.metricsAddr);
    expect(sample(text, 'buildlite_builds_limited_total', { limit: 'concurrency' })).toBe(2);
    expect(sample(text, 'buildlite_builds_limited_total', { limit: 'rate' })).toBe(1);
    expect(sample(text, 'buildlite_builds_quota_waits_total')).toBe(1);
  });

  it("a worker killed while it runs a client's build: the build moves on with its slot, the waiting build starts after it, and no slot is left over", async () => {
    await svc.startWorker('w2');
    const qa = client(QUEUED);
    const a3 = (await qa.submit({ dockerfile: `FROM ${base}\nRUN sleep 5; echo a3-${nonce()}\n` }, tarOf({ n: '7' }))).buildId;
    await eventually('a3 running', async () => (await qa.get(a3)).state === 'running');
    const a4 = (await qa.submit({ dockerfile: `FROM ${base}\nRUN echo a4-${nonce()}\n` }, tarOf({ n: '8' }))).buildId;
    await watchUntil(qa, a4, isWaiting);
    const { proc } = await workerOf(svc, qa, a3);
    await proc.stop('SIGKILL');

    expect((await collectResuming(qa, a4)).at(-1)).toMatchObject({ type: 'result' });
    const [i3, i4] = [await qa.get(a3), await qa.get(a4)];
    expect(i3).toMatchObject({ state: 'succeeded' });
    expect(i3.attempts).toBeGreaterThanOrEqual(2);
    expect(i4.startedAt).toBeGreaterThanOrEqual(i3.finishedAt);
    expect(await conn.hgetall(`${svc.prefix}:client:qa:slots`)).toEqual({});
    expect(await conn.zcard(`${svc.prefix}:client:qa:active`)).toBe(0);
  });
});
