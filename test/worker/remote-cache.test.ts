/**
 * Registry caches through the service, as ephemeral CI runners use them: a
 * build exports its cache with --cache-to, and a later build on a worker
 * that has never built anything imports it with --cache-from and runs no
 * step again.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startService, TOKENS, type Service } from '../helpers/service.js';

describe('remote cache through the service', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let tmp: string;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    await pushBusyboxBase(registry.host);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-rcache-'));
    svc = await startService({ redisUrl: redis.url, workers: 1, concurrency: 1 });
  });
  afterAll(async () => {
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('--cache-from on an empty worker reuses the cache another worker exported with --cache-to (mode=max)', async () => {
    const marker = `ran-${Math.random().toString(36).slice(2)}`;
    await writeFile(path.join(tmp, 'Dockerfile'), `FROM ${registry.host}/library/busybox:latest AS build\nCOPY app.txt /src/\nRUN echo ${marker} && cp /src/app.txt /out.txt\nFROM ${registry.host}/library/busybox:latest\nCOPY --from=build /out.txt /app/\n`);
    await writeFile(path.join(tmp, 'app.txt'), 'app\n');
    const cache = `${registry.host}/rc/cache:main`;
    const common = ['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain'];
    const env = { SOURCE_DATE_EPOCH: '1704067200' };
    const metaA = path.join(tmp, 'a.json');
    const a = await runCli([...common, '--metadata-file', metaA, '-t', `${registry.host}/rc/app:a`, '--push', '--cache-to', `type=registry,ref=${cache},mode=max`, tmp], { env });
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toMatch(new RegExp(`^#\\d+ ${marker}$`, 'm'));
    const first = JSON.parse(await readFile(metaA, 'utf8')) as { 'containerimage.digest': string; build: { id: string } };

    // The worker that built it goes away; a new one with an empty state root takes the next build.
    await svc.workers[0]!.stop('SIGTERM');
    await svc.startWorker('fresh');
    const metaB = path.join(tmp, 'b.json');
    const b = await runCli([...common, '--metadata-file', metaB, '-t', `${registry.host}/rc/app:b`, '--push', '--cache-from', `type=registry,ref=${cache}`, tmp], { env });
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).not.toMatch(new RegExp(`^#\\d+ ${marker}$`, 'm'));
    expect(b.stderr).toMatch(/^#\d+ CACHED$/m);
    const second = JSON.parse(await readFile(metaB, 'utf8')) as { 'containerimage.digest': string; build: { id: string }; cache: { hits: number; misses: number } };
    expect(second.cache.misses).toBe(0);
    expect(second['containerimage.digest']).toBe(first['containerimage.digest']);
    const admin = new BuildliteClient(svc.addr, TOKENS.admin);
    try {
      expect((await admin.get(second.build.id)).worker).toBe('fresh');
      expect((await admin.get(first.build.id)).worker).toBe('w1');
    } finally {
      admin.close();
    }

    // A local directory cache would be on the worker's disk: the API refuses it for clients other than ours too.
    const c = new BuildliteClient(svc.addr, TOKENS.alice);
    try {
      await expect(c.submit({ dockerfile: 'FROM scratch\n', cache_to: [{ type: 'local', ref: '/tmp/x', mode: '', ignore_error: false }] })).rejects.toThrow(/registry caches only/);
    } finally {
      c.close();
    }
  });
});
