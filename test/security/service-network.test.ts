import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import type { BuildEvent } from '../../core/build.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { startFileServer, type FileServer } from '../helpers/file-server.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { collectOnce, startService, TOKENS, type Service } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';

/**
 * docs/security.md T6, T7 and T14 through the build service: a worker process whose
 * operator allowed exactly one loopback address, with short stall limits; a
 * client that sends a reference carrying a password.
 */
describe('build service: the operator’s URL policy and stall limits, references with passwords', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let base: string;
  let files: FileServer;
  let port: number;
  let requests = 0;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    files = await startFileServer('::', (req, res) => {
      requests++;
      if (req.url === '/stall') return; // read, never answered
      res.end(`served ${req.url}\n`);
    });
    port = files.port;
    svc = await startService({ redisUrl: redis.url, workers: 1, workerArgs: ['--allow-url-network', '127.0.0.1/32', '--http-timeouts', 'headers=1s'] });
  });
  afterAll(async () => {
    await files?.stop();
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
  });

  async function build(dockerfile: string): Promise<BuildEvent[]> {
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      const { buildId } = await c.submit({ dockerfile }, tarOf({ f: randomBytes(4).toString('hex') }));
      return await collectOnce(c, buildId);
    } finally {
      c.close();
    }
  }

  it('the allowed address is fetched; any other loopback spelling is refused with the operator’s remedy', async () => {
    const ok = await build(`FROM ${base}\nADD http://127.0.0.1:${port}/allowed /a\nRUN cat /a\n`);
    expect(ok.at(-1), JSON.stringify(ok.at(-1))).toMatchObject({ type: 'result' });
    expect(JSON.stringify(ok)).toContain('served /allowed');

    for (const host of ['127.0.0.2', '2130706434', '[::ffff:127.0.0.2]', '[::1]']) {
      const before = requests;
      const denied = await build(`FROM ${base}\nADD http://${host}:${port}/denied /a\n`);
      const last = denied.at(-1);
      expect(last?.type, host).toBe('error');
      if (last?.type !== 'error') continue;
      expect(last.error.code).toBe('PERMISSION_DENIED');
      expect(last.error.message).toMatch(/is a loopback address, which URL fetches may not reach; the build service operator allows it with buildlite worker --allow-url-network CIDR/);
      expect(requests).toBe(before);
    }
  });

  it('the worker’s --http-timeouts apply: a URL that never answers fails in seconds, naming phase and host', async () => {
    const t0 = Date.now();
    const events = await build(`FROM ${base}\nADD http://127.0.0.1:${port}/stall /a\n`);
    const last = events.at(-1);
    expect(last?.type).toBe('error');
    if (last?.type === 'error') expect(last.error.message).toContain(`timed out after 1s waiting for response headers from 127.0.0.1:${port} (4 attempts)`);
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('a submitted reference with a password is refused at submit, redacted; nothing is queued', async () => {
    const secret = `Pw-${randomBytes(6).toString('hex')}`;
    const c = new BuildliteClient(svc.addr, TOKENS.bob);
    try {
      for (const request of [
        { dockerfile: `FROM ${base}\n`, outputs: [{ type: 'registry', refs: [`user:${secret}@${registry.host}/x:1`] }] },
        { dockerfile: `FROM ${base}\n`, cache_to: [{ type: 'registry', ref: `${secret}@${registry.host}/c:1`, mode: '', ignore_error: false }] },
      ]) {
        const err = (await c.submit(request, tarOf({ g: '1' })).catch((e: unknown) => e)) as Error & { code?: string };
        expect(err.code).toBe('INVALID_ARGUMENT');
        expect(err.message).toContain('carries credentials');
        expect(err.message).not.toContain(secret);
      }
      expect(await c.list({})).toEqual([]);
    } finally {
      c.close();
    }
  });
});
