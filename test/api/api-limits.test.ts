import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import type { RemoteError } from '../../core/errors.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { eventually, logLines, startService, TOKENS, type Service } from '../helpers/service.js';
import { sample, scrape } from '../helpers/prom.js';
import { tarOf } from '../helpers/tar.js';

const KiB = 1024;
const BIG = 'big-token-0123456789abcdef00';
const FAST = 'fast-token-0123456789abcdef0';

/**
 * Limits at the service edge, against a running `serve` (config file, flags
 * and tokens file as an operator writes them) with no workers: every check
 * here happens before a build is queued, or is read from the queued job.
 */
describe('service limits at the API (real serve process, gRPC over TCP, real Redis)', () => {
  let redis: TestRedis;
  let conn: Redis;
  let svc: Service;
  let ctx: string;

  beforeAll(async () => {
    redis = await startRedis();
    conn = new Redis(redis.url);
    svc = await startService({
      redisUrl: redis.url,
      workers: 0,
      metrics: true,
      // The file's two API limits are below the flags': the flags win.
      config: 'limits:\n  max-context-size: 128KiB\n  max-dockerfile-size: 4KiB\n  memory: 1GiB\n',
      apiArgs: ['--max-context-size', '256KiB', '--max-dockerfile-size', '8KiB'],
      tokens: [
        // Above the flags for this token only; its memory is above the built-in worker ceiling (logged at start).
        `{ token: ${BIG}, client: big, limits: { max-context-size: 2MiB, max-dockerfile-size: 6MiB, memory: 8GiB } }`,
        `{ token: ${FAST}, client: fast, limits: { step-timeout: 5s } }`,
      ],
    });
    ctx = await mkdtemp(path.join(os.tmpdir(), 'bl-limits-'));
  });
  afterAll(async () => {
    conn?.disconnect();
    await svc?.stop();
    await redis?.stop();
    if (ctx) await rm(ctx, { recursive: true, force: true });
  });

  const stored = async () => ({ blobs: await readdir(path.join(svc.contexts, 'sha256')), ingest: await readdir(path.join(svc.contexts, 'ingest')) });
  /** `bytes` of random ASCII (one byte a character in the tar). */
  const text = (bytes: number) => randomBytes(bytes).toString('base64').slice(0, bytes);
  /** A tar holding a file of `bytes` (a context is sent as is, never compressed). */
  const contextOf = (bytes: number) => tarOf({ 'blob.bin': text(bytes) });

  it('a context over the limit is refused during the upload, before anything is stored, naming the limit and the client', async () => {
    const before = await stored();
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      // An endless context: the submit can only end because the server refused it mid-upload.
      const endless = new Readable({ read() { this.push(randomBytes(64 * KiB)); } });
      const err = (await c.submit({ dockerfile: 'FROM scratch\n' }, endless).then(() => undefined, (e: unknown) => e)) as RemoteError | undefined;
      endless.destroy();
      expect(err).toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'the build context is larger than the limit of 256 KiB for client alice' });
      expect(err!.details()).toEqual({ limit: 'maxContextBytes', value: 256 * KiB });
      // 300 KiB is over the flag's 256 KiB (and the file's 128 KiB): refused the same way.
      await expect(c.submit({ dockerfile: 'FROM scratch\n' }, contextOf(300 * KiB))).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'the build context is larger than the limit of 256 KiB for client alice' });
    } finally {
      c.close();
    }
    // No new blob, and no partial upload left behind.
    expect(await stored()).toEqual(before);
    expect(before.ingest).toEqual([]);

    // The CLI prints the one line and exits 1.
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY big /big\n');
    await writeFile(path.join(ctx, 'big'), randomBytes(400 * KiB));
    const cli = await runCli(['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain', ctx]);
    expect(cli.stderr).toBe('error: the build context is larger than the limit of 256 KiB for client alice\n');
    expect(cli.code).toBe(1);
    expect(await stored()).toEqual(before);
  });

  it("the flag's limit is in force over the file's, and a token's larger limit lets a bigger context through for that token only", async () => {
    const alice = new BuildliteClient(svc.addr, TOKENS.alice);
    const big = new BuildliteClient(svc.addr, BIG);
    try {
      // 200 KiB: over the file's 128 KiB, under the flag's 256 KiB.
      const ok = await alice.submit({ dockerfile: 'FROM scratch\n' }, contextOf(200 * KiB));
      expect((await stored()).blobs).toContain(`${ok.contextDigest.slice('sha256:'.length)}.tar`);
      // 1 MiB: over alice's limit, under big's 2 MiB.
      const payload = text(1024 * KiB);
      await expect(alice.submit({ dockerfile: 'FROM scratch\n' }, tarOf({ 'm.bin': payload }))).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
      const accepted = await big.submit({ dockerfile: 'FROM scratch\n' }, tarOf({ 'm.bin': payload }));
      expect((await stored()).blobs).toContain(`${accepted.contextDigest.slice('sha256:'.length)}.tar`);
      expect((await big.get(accepted.buildId)).state).toBe('queued');
      // big's own limit holds too.
      await expect(big.submit({ dockerfile: 'FROM scratch\n' }, contextOf(2100 * KiB))).rejects.toMatchObject({ message: 'the build context is larger than the limit of 2 MiB for client big' });
    } finally {
      alice.close();
      big.close();
    }
  });

  it('the Dockerfile limit: the flag over the file, a token over the flag, and no message cap below it', async () => {
    const df = (kib: number) => `FROM scratch\n# ${'x'.repeat(kib * KiB)}\n`;
    const alice = new BuildliteClient(svc.addr, TOKENS.alice);
    const big = new BuildliteClient(svc.addr, BIG);
    try {
      // 6 KiB: over the file's 4 KiB, under the flag's 8 KiB.
      await alice.submit({ dockerfile: df(6) }, tarOf({ a: '1' }));
      const err = (await alice.submit({ dockerfile: df(10) }, tarOf({ a: '1' })).then(() => undefined, (e: unknown) => e)) as RemoteError | undefined;
      expect(err).toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'the Dockerfile is 10.0 KiB: the limit is 8 KiB' });
      expect(err!.details()).toEqual({ limit: 'maxDockerfileBytes', value: 8 * KiB });
      await big.submit({ dockerfile: df(10) }, tarOf({ a: '1' }));
      // 5 MiB: more than the server's default 4 MiB messages, which grow to fit the largest Dockerfile limit.
      await big.submit({ dockerfile: df(5 * 1024) }, tarOf({ a: '1' }));
      await expect(big.submit({ dockerfile: df(7 * 1024) }, tarOf({ a: '1' }))).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'the Dockerfile is 7.0 MiB: the limit is 6 MiB' });
    } finally {
      alice.close();
      big.close();
    }
  });

  it('refusals are counted by limit in buildlite_builds_limited_total', async () => {
    const text = await scrape(svc.metricsAddr);
    // The endless, 300 KiB and CLI 400 KiB contexts of alice, her 1 MiB one and big's 2100 KiB one;
    // alice's 10 KiB Dockerfile and big's 7 MiB one.
    expect(sample(text, 'buildlite_builds_limited_total', { limit: 'maxContextBytes' })).toBe(5);
    expect(sample(text, 'buildlite_builds_limited_total', { limit: 'maxDockerfileBytes' })).toBe(2);
    // Every reason's series exists from the start.
    expect(sample(text, 'buildlite_builds_limited_total', { limit: 'stepTimeoutMs' })).toBe(0);
    expect(sample(text, 'buildlite_builds_limited_total', { limit: 'rate' })).toBe(0);
  });

  it("a token's limits reach its queued job, over the service's; clients never choose them", async () => {
    const fast = new BuildliteClient(svc.addr, FAST);
    const alice = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      // A client that sends a `limits` field gets nothing from it: the proto has none, so it is dropped.
      const f = await fast.submit({ dockerfile: 'FROM scratch\n', limits: { stepTimeoutMs: 1 } } as never, tarOf({ a: '1' }));
      const a = await alice.submit({ dockerfile: 'FROM scratch\n' }, tarOf({ a: '2' }));
      const jobLimits = async (id: string) => (JSON.parse((await conn.hget(`${svc.prefix}:bull:builds:${id}`, 'data'))!) as { request: { limits?: unknown } }).request.limits;
      const service = { maxContextBytes: 256 * KiB, maxDockerfileBytes: 8 * KiB, memoryBytes: 1024 ** 3 };
      // Only what the operator set: the worker fills every other limit from its own ceiling.
      expect(await jobLimits(f.buildId)).toEqual({ ...service, stepTimeoutMs: 5000 });
      expect(await jobLimits(a.buildId)).toEqual(service);
    } finally {
      fast.close();
      alice.close();
    }
  });

  it('a limit set above a built-in worker ceiling is logged at start, naming the client', async () => {
    const warned = () => logLines(svc.api.output()).filter((l) => l['level'] === 40 && l['source'] === 'client big');
    await eventually('the ceiling warning', () => warned().length > 0);
    expect(warned().map((l) => [l['limit'], l['value'], l['ceiling']])).toEqual([['memory', '8 GiB', '4 GiB']]);
    expect(String(warned()[0]!['msg'])).toMatch(/^client big: memory 8 GiB is above the built-in worker ceiling of 4 GiB: a worker cuts it to its own memory/);
  });
});

describe('buildlite serve with a bad config file', () => {
  it('fails at start, naming the file and the key', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-badconf-'));
    try {
      const config = path.join(dir, 'service.yaml');
      await writeFile(config, 'limits:\n  memory: 2GiB\n  step-timout: 30m\n');
      // Refused before Redis is even waited for: the port below has no server.
      const r = await runCli(['serve', '--redis', 'redis://127.0.0.1:1', '--token', `ci=${TOKENS.alice}`, '--config', config, '--root', path.join(dir, 'root')]);
      expect(r.stderr).toMatch(new RegExp(`^error: config file ${config.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: limits: unknown limit "step-timout" \\(known: step-timeout, `));
      expect(r.code).toBe(1);
      await writeFile(config, 'quotas:\n  max-concurrent-builds: 2\n');
      const top = await runCli(['serve', '--redis', 'redis://127.0.0.1:1', '--token', `ci=${TOKENS.alice}`, '--config', config, '--root', path.join(dir, 'root')]);
      expect(top.stderr).toContain(`error: config file ${config}: unknown key "quotas" (known: limits, quota)`);
      expect(top.code).toBe(1);
      const flag = await runCli(['serve', '--redis', 'redis://127.0.0.1:1', '--token', `ci=${TOKENS.alice}`, '--max-context-size', 'huge', '--root', path.join(dir, 'root')]);
      expect(flag.stderr).toMatch(/--max-context-size "huge": /);
      expect(flag.code).toBe(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
