/**
 * Platforms in the service: each worker advertises what it builds (its own
 * platform, and those QEMU runs on its machine, narrowed by `--platforms`),
 * `workers` lists them, and a build for a platform only some workers offer
 * goes to one of those; a multi-platform build pushes its index.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { sh } from '../cli/fixture.js';
import { runCli } from '../helpers/cli.js';
import { pushMultiArchBusybox, type MultiArchBase } from '../helpers/multi-arch-base.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { collectResuming, startService, TOKENS, type Service } from '../helpers/service.js';
import { tarOf } from '../helpers/tar.js';

describe('platforms in the service', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let svc: Service;
  let multi: MultiArchBase;
  let c: BuildliteClient;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    multi = await pushMultiArchBusybox(registry.host);
    svc = await startService({ redisUrl: redis.url, workers: 0, concurrency: 1 });
    await svc.startWorker('amd64-only', undefined, ['--platforms', 'linux/amd64']);
    await svc.startWorker('all');
    c = new BuildliteClient(svc.addr, TOKENS.alice);
  });
  afterAll(async () => {
    c?.close();
    await svc?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
  });

  it('workers advertise their platforms: the host first, emulated ones after; --platforms narrows it', async () => {
    const ws = await c.listWorkers();
    const by = new Map(ws.map((w) => [w.id, w]));
    expect(by.get('amd64-only')?.platforms).toEqual(['linux/amd64']);
    expect(by.get('all')?.platforms.slice(0, 2)).toEqual(['linux/amd64', 'linux/386']);
    expect(by.get('all')?.platforms).toEqual(expect.arrayContaining(['linux/arm64', 'linux/arm/v7']));
    const r = await runCli(['workers', '--server', svc.addr, '--token', TOKENS.alice, '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const listed = JSON.parse(r.stdout) as Array<{ id: string; platforms: string[] }>;
    expect(listed.find((w) => w.id === 'amd64-only')?.platforms).toEqual(['linux/amd64']);
    expect(listed.find((w) => w.id === 'all')?.platforms).toContain('linux/arm64');
  });

  it('routes an arm64 build to the worker that offers arm64, every time', async () => {
    for (let i = 0; i < 3; i++) {
      const { buildId } = await c.submit(
        { dockerfile: `FROM ${multi.ref}\nRUN uname -m && echo build-${i}\n`, platforms: [{ os: 'linux', architecture: 'arm64', variant: '' }] },
        tarOf({ n: String(i) }),
      );
      const events = await collectResuming(c, buildId);
      expect(events.at(-1)).toMatchObject({ type: 'result' });
      const logs = events.flatMap((e) => (e.type === 'log' ? [e.data] : [])).join('');
      expect(logs).toContain('aarch64');
      expect((await c.get(buildId)).worker).toBe('all');
    }
  });

  it('an amd64+arm64 build through the service pushes an index with both platforms', async () => {
    const ref = `${registry.host}/svc/multi:1`;
    const ctxDir = `${svc.dir}/ctx-multi`;
    await sh('mkdir', ['-p', ctxDir]);
    await sh('sh', ['-c', `printf 'FROM ${multi.ref}\\nRUN uname -m > /m\\n' > ${ctxDir}/Dockerfile`]);
    const meta = `${svc.dir}/meta-multi.json`;
    const r = await runCli(['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64', '-t', ref, '--push', '--metadata-file', meta, ctxDir]);
    expect(r.code, r.stderr).toBe(0);
    const { stdout } = await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
    const index = JSON.parse(stdout) as { manifests: Array<{ platform: unknown; digest: string }> };
    expect(index.manifests.map((m) => m.platform)).toEqual([{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }]);
    // Each platform's digest crosses the wire into --metadata-file, as in an embedded build.
    const { stdout: m } = await sh('cat', [meta]);
    const parsed = JSON.parse(m) as { platforms: Array<{ platform: string; imageDigest: string }>; 'containerimage.config.digest'?: string; build: { id: string } };
    // Its arm64 half ran on the worker that advertises arm64, never on the amd64-only one.
    expect((await c.get(parsed.build.id)).worker).toBe('all');
    expect(parsed.platforms.map((p) => [p.platform, p.imageDigest])).toEqual([['linux/amd64', index.manifests[0]!.digest], ['linux/arm64', index.manifests[1]!.digest]]);
    expect(parsed['containerimage.config.digest']).toBeUndefined();
  });
});
