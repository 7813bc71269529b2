import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BuildliteClient } from '../../api/index.js';
import { pushBusyboxBase } from '../helpers/base-image.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startService, TOKENS, type Service, collectOnce } from '../helpers/service.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { tarOf } from '../helpers/tar.js';


async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

function nonce(): string {
  return Math.random().toString(36).slice(2);
}

const GC_CAP = 7 << 20;
const STORE_REPO = 'buildlite/store';

/**
 * API and worker share no disk: contexts and step logs go through a real
 * registry (behind a counting proxy); the worker also runs continuous GC with
 * a small hard cap.
 */
describe('service store in a registry, full step logs, continuous GC', () => {
  let redis: TestRedis;
  let registry: TestRegistry;
  let proxy: CountingProxy;
  let svc: Service;
  let base: string;
  let tmp: string;
  let c: BuildliteClient;

  beforeAll(async () => {
    [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
    proxy = await startCountingProxy(registry.url);
    await pushBusyboxBase(registry.host);
    base = `${registry.host}/library/busybox:latest`;
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-svc-store-'));
    svc = await startService({
      redisUrl: redis.url,
      workers: 1,
      concurrency: 1,
      contexts: `registry://${proxy.host}/${STORE_REPO}`,
      workerArgs: ['--gc-keep-storage', `${GC_CAP}`, '--gc-interval', '500ms'],
    });
    c = new BuildliteClient(svc.addr, TOKENS.alice);
  });
  afterAll(async () => {
    c?.close();
    await svc?.stop();
    await proxy?.stop();
    await Promise.all([redis?.stop(), registry?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const contextPuts = (digest: string) => proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/') && r.path.includes(`digest=${encodeURIComponent(digest)}`)).length;

  it('stores contexts as registry blobs, uploads a context once, and workers fetch it digest-verified', async () => {
    const files = { 'hello.txt': `hello-${nonce()}\n` };
    const df = `FROM ${base}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n`;
    const first = await c.submit({ dockerfile: df }, tarOf(files));
    expect((await collectOnce(c, first.buildId)).at(-1)).toMatchObject({ type: 'result' });
    expect(await c.hasContext(first.contextDigest)).toBe(true);
    expect(contextPuts(first.contextDigest)).toBe(1);
    const tags = (await (await fetch(`${registry.url}/v2/${STORE_REPO}/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toContain(`context-${first.contextDigest.slice('sha256:'.length)}`);

    // The same bytes uploaded again: the API checks the registry first and sends nothing.
    const again = await c.submit({ dockerfile: df }, tarOf(files));
    expect(again.contextDigest).toBe(first.contextDigest);
    expect((await collectOnce(c, again.buildId)).at(-1)).toMatchObject({ type: 'result' });
    expect(contextPuts(first.contextDigest)).toBe(1);
    expect(proxy.requests.some((r) => r.method === 'HEAD' && r.path.endsWith(`/blobs/${first.contextDigest}`))).toBe(true);

    // A blob that comes back altered is refused by the worker: the build fails, nothing runs on wrong bytes.
    proxy.corruptBlobs = true;
    try {
      const bad = await c.submit({ dockerfile: df }, tarOf({ 'hello.txt': `other-${nonce()}\n` }));
      const end = (await collectOnce(c, bad.buildId)).at(-1);
      expect(end).toMatchObject({ type: 'error', error: { code: 'DIGEST_MISMATCH' } });
    } finally {
      proxy.corruptBlobs = false;
    }
  });

  it('retries a build that failed on infrastructure (registry answering 503) with backoff; it succeeds once', async () => {
    // Every request of the worker's first attempt to fetch the context fails (1 + the registry client's 4 retries).
    proxy.failBlobGets = 5;
    try {
      const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo retried-${nonce()}\n` }, tarOf({ r: nonce() }));
      const events = await collectOnce(c, buildId);
      expect(events.at(-1), JSON.stringify(events.slice(-3))).toMatchObject({ type: 'result' });
      expect(events.filter((e) => e.type === 'result' || e.type === 'error')).toHaveLength(1);
      expect(events.some((e) => e.type === 'warning' && /attempt 1 failed .*retrying/.test(e.message))).toBe(true);
      expect(await c.get(buildId)).toMatchObject({ state: 'succeeded', attempts: 2 });
      expect(proxy.failBlobGets).toBe(0);
    } finally {
      proxy.failBlobGets = 0;
    }
  });

  it('clips a chatty step in the stream with a marker naming `buildlite logs`, which prints the whole log', async () => {
    const ctx = path.join(tmp, 'chatty');
    await mkdir(ctx, { recursive: true });
    const size = 5_000_000; // over the builder's 4 MiB per-step cap in the event stream
    await writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nRUN echo ${nonce()} >/dev/null; head -c ${size} /dev/zero | tr '\\0' x\n`);
    const built = await runCli(['build', '--server', svc.addr, '--token', TOKENS.alice, '--progress', 'plain', ctx]);
    expect(built.code, built.stderr.slice(-2000)).toBe(0);
    const out = built.stdout + built.stderr;
    const m = /buildlite logs ([0-9a-f-]{36}) ([0-9a-f]{12}) --server ([^\s\]]+)/.exec(out);
    expect(m, out.slice(-2000)).not.toBeNull();
    expect(m![3]).toBe(svc.addr);
    expect(out).not.toMatch(/the full log is in \//);

    const fetched = await runCli(['logs', m![1]!, m![2]!, '--server', svc.addr, '--token', TOKENS.alice]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.stdout.length).toBe(size);
    expect(/^x+$/.test(fetched.stdout)).toBe(true);

    // Another client cannot read it; a step that does not exist is NOT_FOUND.
    const bob = await runCli(['logs', m![1]!, m![2]!, '--server', svc.addr, '--token', TOKENS.bob]);
    expect(bob.code).toBe(1);
    expect(bob.stderr).toMatch(/no build/);
    const missing = await runCli(['logs', m![1]!, 'abcdef', '--server', svc.addr, '--token', TOKENS.alice]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no stored log for step abcdef/);
  });

  it('keeps the full log of every step that printed, equal to what the stream carried', async () => {
    const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN echo one-${nonce()}; echo two >&2\nRUN echo three-${nonce()}\n` }, tarOf({ z: '1' }));
    const events = await collectOnce(c, buildId);
    expect(events.at(-1)).toMatchObject({ type: 'result' });
    const byVertex = new Map<string, string>();
    for (const e of events) if (e.type === 'log') byVertex.set(e.vertex, (byVertex.get(e.vertex) ?? '') + e.data);
    expect(byVertex.size).toBe(2);
    for (const [vertex, text] of byVertex) {
      expect((await readAll(c.getLog(buildId, vertex))).toString()).toBe(text);
      expect((await readAll(c.getLog(buildId, vertex.slice(7, 19)))).toString()).toBe(text);
    }
  });

  it('continuous GC keeps the worker under its hard cap across builds', async () => {
    const admin = new BuildliteClient(svc.addr, TOKENS.admin);
    const worker = svc.workers[0]!;
    try {
      const usage = async () => (await admin.diskUsage()).find((w) => w.worker === 'w1')?.total ?? Number.NaN;
      const layer = 1_500_000;
      const builds = 6;
      // Together the layers alone are past the cap: without GC the store could not stay under it.
      expect(layer * builds).toBeGreaterThan(GC_CAP);
      for (let i = 0; i < builds; i++) {
        const { buildId } = await c.submit({ dockerfile: `FROM ${base}\nRUN head -c ${layer} /dev/urandom > /r-${i}-${nonce()}\n` }, tarOf({ g: String(i) }));
        expect((await collectOnce(c, buildId)).at(-1)).toMatchObject({ type: 'result' });
        let total = await usage();
        for (let t = 0; t < 100 && !(total <= GC_CAP); t++) {
          await new Promise((r) => setTimeout(r, 200));
          total = await usage();
        }
        expect(total, `after build ${i + 1}`).toBeLessThanOrEqual(GC_CAP);
      }
      expect(worker.output()).toMatch(/"msg":"gc pass"/);
    } finally {
      admin.close();
    }
  });
});
