import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { loadServices } from '../../api/proto.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { eventually, logLines, startService, TOKENS, type Service } from '../helpers/service.js';
import { sample, scrape } from '../helpers/prom.js';

/** Calls ListWorkers with a raw authorization header (or none) and returns the status code. */
function rawCall(addr: string, authorization: string | undefined): Promise<number> {
  const { builds } = loadServices();
  const c = new builds(addr, grpc.credentials.createInsecure()) as grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  const md = new grpc.Metadata();
  if (authorization !== undefined) md.set('authorization', authorization);
  return new Promise((resolve) => {
    c['ListWorkers']!({}, md, (err: grpc.ServiceError | null) => {
      c.close();
      resolve(err ? err.code : grpc.status.OK);
    });
  });
}

const authFailures = (text: string, reason: string) => sample(text, 'buildlite_auth_failures_total', { reason });

describe('refusals a client can cause: tokens, sizes, unreachable servers (real serve process, gRPC over TCP, real Redis)', () => {
  let redis: TestRedis;
  let svc: Service;
  let ctx: string;

  beforeAll(async () => {
    redis = await startRedis();
    svc = await startService({ redisUrl: redis.url, workers: 0, metrics: true });
    ctx = await mkdtemp(path.join(os.tmpdir(), 'bl-refusals-'));
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
    await writeFile(path.join(ctx, 'a'), 'a\n');
  });
  afterAll(async () => {
    await svc?.stop();
    await redis?.stop();
    if (ctx) await rm(ctx, { recursive: true, force: true });
  });

  it('a wrong token: exit code 3 for build and logs, a warn log line without the token, counted by reason', async () => {
    const before = await scrape(svc.metricsAddr);
    // Every reason's series exists before its first failure.
    for (const reason of ['missing', 'malformed', 'unknown', 'denied']) expect(authFailures(before, reason), reason).toBe(0);
    const mark = svc.api.output().length;
    const wrong = 'wrong-token-Zq7xK2pL9vB4nM8c';

    const build = await runCli(['build', '--server', svc.addr, '--token', wrong, '--progress', 'plain', ctx]);
    expect(build.stderr).toBe('error: the token is not valid\n');
    expect(build.code).toBe(3);
    const logs = await runCli(['logs', '--server', svc.addr, '--token', wrong, '00000000-0000-0000-0000-000000000000', 'abcd']);
    expect(logs.stderr).toBe('error: the token is not valid\n');
    expect(logs.code).toBe(3);
    // A valid token not granted what the build asks for is refused the same way.
    const denied = await runCli(['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain', '--network', 'host', '--allow', 'network.host', ctx]);
    expect(denied.stderr).toMatch(/^error: the token of client "alice" is not granted network\.host.*\n$/);
    expect(denied.code).toBe(3);
    expect(await rawCall(svc.addr, undefined)).toBe(grpc.status.UNAUTHENTICATED);
    expect(await rawCall(svc.addr, 'Basic YWxpY2U6cHc=')).toBe(grpc.status.UNAUTHENTICATED);

    const after = await scrape(svc.metricsAddr);
    expect(authFailures(after, 'unknown')).toBe(2);
    expect(authFailures(after, 'missing')).toBe(1);
    expect(authFailures(after, 'malformed')).toBe(1);
    expect(authFailures(after, 'denied')).toBe(1);

    // The API writes each line before it answers, but its stderr reaches us on its own pipe.
    const refusedLines = () => logLines(svc.api.output(), mark).filter((l) => typeof l['reason'] === 'string');
    await eventually('five refusals in the API log', () => refusedLines().length >= 5);
    const output = svc.api.output().slice(mark);
    const refused = refusedLines();
    expect(refused.map((l) => [l['method'], l['reason']]).sort()).toEqual(
      [['GetLog', 'unknown'], ['HasContext', 'unknown'], ['ListWorkers', 'malformed'], ['ListWorkers', 'missing'], ['Submit', 'denied']].sort(),
    );
    for (const l of refused) {
      expect(l['level']).toBe(40);
      expect(l['peer']).toMatch(/^127\.0\.0\.1:\d+$/);
    }
    // Never the token, nor any 8 characters of it.
    for (let i = 0; i + 8 <= wrong.length; i++) expect(output).not.toContain(wrong.slice(i, i + 8));
    expect(output).not.toContain('YWxpY2U6cHc=');
  });

  it('a Dockerfile over a limit: RESOURCE_EXHAUSTED naming the limit, one line on the client, no error or stack in the API log', async () => {
    const mark = svc.api.output().length;
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      // 10 MiB: grpc-js refuses the message from its length prefix, before reading it.
      const big = `FROM scratch\n# ${'x'.repeat(10 << 20)}\n`;
      await expect(c.submit({ dockerfile: big })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'the Dockerfile is 10.0 MiB: the server takes messages of at most 4 MiB' });
      // 2 MiB: within the message limit, over the Dockerfile limit that the server checks.
      const mid = `FROM scratch\n# ${'x'.repeat(2 << 20)}\n`;
      await expect(c.submit({ dockerfile: mid })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED', message: 'the Dockerfile is 2.0 MiB: the limit is 1 MiB' });
    } finally {
      c.close();
    }
    const bigFile = path.join(os.tmpdir(), `bl-big-${process.pid}.Dockerfile`);
    await writeFile(bigFile, `FROM scratch\n# ${'y'.repeat(10 << 20)}\n`);
    try {
      const cli = await runCli(['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain', '-f', bigFile, ctx]);
      expect(cli.stderr).toBe('error: the Dockerfile is 10.0 MiB: the server takes messages of at most 4 MiB\n');
      expect(cli.code).toBe(1);
    } finally {
      await rm(bigFile, { force: true });
    }

    // The refusals are in the API log as expected ones: info, no stack, nothing at error level.
    const overLimit = () => logLines(svc.api.output(), mark).filter((l) => l['method'] === 'Submit' && l['level'] === 30 && /over the 4 MiB limit/.test(String(l['msg'])));
    await eventually('two over-limit Submits in the API log', () => overLimit().length >= 2);
    expect(overLimit().length).toBe(2);
    const lines = logLines(svc.api.output(), mark);
    expect(lines.filter((l) => (l['level'] as number) >= 50)).toEqual([]);
    expect(svc.api.output().slice(mark)).not.toMatch(/ERR_STREAM_PREMATURE_CLOSE|\n\s+at /);
    const submits = lines.filter((l) => l['method'] === 'Submit');
    expect(submits.some((l) => l['level'] === 30 && l['code'] === 'LIMIT_EXCEEDED' && /2\.0 MiB: the limit is 1 MiB/.test(String(l['msg'])))).toBe(true);
  });

  it('an unreachable server: one line "cannot reach ADDR: REASON", exit 1, in seconds', async () => {
    const closed = await freePort();
    for (const args of [
      ['build', '--server', `127.0.0.1:${closed}`, '--token', TOKENS.alice, ctx],
      ['logs', '--server', `127.0.0.1:${closed}`, '--token', TOKENS.alice, '00000000-0000-0000-0000-000000000000', 'abcd'],
    ]) {
      const t0 = Date.now();
      const r = await runCli(args);
      // Refused at once, not left to the client's 10 s connect deadline.
      expect(Date.now() - t0).toBeLessThan(9000);
      expect(r.stderr).toBe(`error: cannot reach 127.0.0.1:${closed}: connection refused\n`);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
    }
    // A name that does not resolve (how the resolver fails varies; the line's shape does not).
    const dns = await runCli(['build', '--server', 'nosuch.invalid:7070', '--token', TOKENS.alice, ctx]);
    expect(dns.stderr).toMatch(/^error: cannot reach nosuch\.invalid:7070: [^\n]+\n$/);
    expect(dns.code).toBe(1);
  });

  it('a server that accepts connections and never answers: the client gives up at its connect timeout', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const addr = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const c = new BuildliteClient(addr, TOKENS.alice, { connectTimeoutMs: 800 });
    try {
      const t0 = Date.now();
      await expect(c.list()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: `cannot reach ${addr}: no answer within 0.8s` });
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      c.close();
      silent.close();
    }
  });
});
