import { mkdtemp, rm, stat, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiServer, BuildliteClient } from '../../api/index.js';
import { parseDigest } from '../../core/digest.js';
import { openServiceStore, RedisStoreIndex, storedFile, type ServiceStore, type StoredKind } from '../../store/index.js';
import { Keys } from '../../worker/redis-keys.js';
import { runCli } from '../helpers/cli.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { tarOf } from '../helpers/tar.js';

const DAY = 24 * 3600_000;
const KEEP = 7 * DAY;
const TOKEN = 'retention-token-0123456789abcdef';
const STORE_REPO = 'buildlite/retained';
const DF = 'FROM scratch\nCOPY . /\n';

let redis: TestRedis;
let registry: TestRegistry;

beforeAll(async () => {
  [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
});
afterAll(async () => {
  await Promise.all([redis?.stop(), registry?.stop()]);
});

function nonce(): string {
  return Math.random().toString(36).slice(2);
}

/**
 * The API's store retention against a real Redis (queued builds with no
 * worker to take them) and, for the registry kind, a real registry with
 * deletes enabled. Age is set, not waited for: a directory blob's mtime, a
 * registry blob's entry in the use index.
 */
describe.each(['dir', 'registry'] as const)('store retention (%s store)', (kind) => {
  let tmp: string;
  let api: ApiServer;
  let c: BuildliteClient;
  let conn: Redis;
  let keys: Keys;
  let spec: string;
  let side: ServiceStore;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-retention-'));
    keys = new Keys(`ret${process.pid}${nonce()}`);
    spec = kind === 'dir' ? path.join(tmp, 'store') : `registry://${registry.host}/${STORE_REPO}-${nonce()}`;
    // intervalMs 0: passes only when the test asks, so nothing races the ages it sets.
    api = await ApiServer.start({
      redisUrl: redis.url,
      prefix: keys.prefix,
      listen: '127.0.0.1:0',
      tokens: [{ client: 'alice', token: TOKEN }],
      contexts: spec,
      tmpDir: path.join(tmp, 'api-tmp'),
      retention: { keepDurationMs: KEEP, intervalMs: 0 },
      logger: pino({ level: 'silent' }),
    });
    c = new BuildliteClient(`127.0.0.1:${api.port}`, TOKEN);
    conn = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    // A second handle on the same store, as a worker has (step logs are written there).
    side = await openServiceStore(spec, { tmpDir: path.join(tmp, 'side-tmp'), useIndex: new RedisStoreIndex(conn, keys) });
    await side.init();
  });
  afterAll(async () => {
    c?.close();
    await api?.close(1000);
    await side?.close();
    conn?.disconnect();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** Makes a blob look last used `ms` ago. */
  async function age(k: StoredKind, d: string, ms = 30 * DAY): Promise<void> {
    const at = Date.now() - ms;
    if (kind === 'dir') await utimes(storedFile(spec, k, parseDigest(d)), new Date(at), new Date(at));
    else await conn.zadd(keys.storeUse(k), at, d);
  }

  /** Is the blob stored? Asked of the backing itself, not through our store code. */
  async function stored(k: StoredKind, d: string): Promise<boolean> {
    if (kind === 'dir') return (await stat(storedFile(spec, k, parseDigest(d))).catch(() => undefined)) !== undefined;
    const repo = spec.slice('registry://'.length + registry.host.length + 1);
    const res = await fetch(`${registry.url}/v2/${repo}/manifests/${k}-${d.slice('sha256:'.length)}`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    return res.status === 200;
  }

  async function submitNew(): Promise<{ buildId: string; contextDigest: string }> {
    return c.submit({ dockerfile: DF }, tarOf({ 'f.txt': `${nonce()}\n` }));
  }

  it('removes an old unreferenced context and keeps the context of a queued build', async () => {
    const queued = await submitNew();
    const done = await submitNew();
    expect((await c.cancel(done.buildId)).state).toBe('cancelled');
    expect((await c.get(queued.buildId)).state).toBe('queued');
    // A record from before the `context` field: the job data still names the context.
    const legacy = await submitNew();
    await conn.hdel(keys.build(legacy.buildId), 'context');
    for (const b of [queued, done, legacy]) await age('context', b.contextDigest);

    const r = await api.sweepStore();
    expect(r.removed.context).toBe(1);
    expect(r.keptReferenced).toBe(2);
    expect(r.errors).toBe(0);
    expect(await stored('context', done.contextDigest)).toBe(false);
    expect(await stored('context', queued.contextDigest)).toBe(true);
    expect(await stored('context', legacy.contextDigest)).toBe(true);
    // The API no longer claims it: a client uploads it again.
    expect(await c.hasContext(done.contextDigest)).toBe(false);

    // Once the build has ended its context is only as old as its last use.
    await c.cancel(queued.buildId);
    await c.cancel(legacy.buildId);
    await age('context', queued.contextDigest);
    await age('context', legacy.contextDigest, 2 * DAY);
    const r2 = await api.sweepStore();
    expect(r2.removed.context).toBe(1);
    expect(await stored('context', queued.contextDigest)).toBe(false);
    expect(await stored('context', legacy.contextDigest)).toBe(true);
    // A later clock makes the 2-day-old one expire too.
    const r3 = await api.sweepStore(Date.now() + 6 * DAY);
    expect(r3.removed.context).toBe(1);
    expect(await stored('context', legacy.contextDigest)).toBe(false);
  });

  it('keeps the named contexts (stored with PutContext) of a queued build', async () => {
    const named = await c.putContext(tarOf({ 'lib.txt': `${nonce()}\n` }));
    const orphan = await c.putContext(tarOf({ 'x.txt': `${nonce()}\n` }));
    const none = { ref: '', tag: '', digest: '', url: '' };
    const b = await c.submit({ dockerfile: DF, named_contexts: [{ name: 'lib', type: 'local', context_digest: named, ...none }] }, tarOf({ 'f.txt': `${nonce()}\n` }));
    for (const d of [named, orphan, b.contextDigest]) await age('context', d);
    await api.sweepStore();
    expect(await stored('context', named)).toBe(true);
    expect(await stored('context', b.contextDigest)).toBe(true);
    expect(await stored('context', orphan)).toBe(false);
    // Once the build has ended they go like any context: the next tests count from a clean store.
    await c.cancel(b.buildId);
    expect((await api.sweepStore()).removed.context).toBe(2);
    expect(await stored('context', named)).toBe(false);
  });

  it('counts a re-submitted context that was not re-uploaded as fresh', async () => {
    const first = await submitNew();
    await c.cancel(first.buildId);
    await age('context', first.contextDigest);
    // What the CLI does: HasContext, then Submit by digest with no chunks.
    expect(await c.hasContext(first.contextDigest)).toBe(true);
    await age('context', first.contextDigest);
    const again = await c.submit({ dockerfile: DF, context_digest: first.contextDigest });
    expect(again.contextDigest).toBe(first.contextDigest);
    await c.cancel(again.buildId);

    const r = await api.sweepStore();
    expect(r.removed.context).toBe(0);
    expect(await stored('context', first.contextDigest)).toBe(true);
    // HasContext alone refreshes too (it promises the context to the Submit that follows).
    await age('context', first.contextDigest);
    expect(await c.hasContext(first.contextDigest)).toBe(true);
    expect((await api.sweepStore()).removed.context).toBe(0);
    // Aged again with no use: now it goes.
    await age('context', first.contextDigest);
    expect((await api.sweepStore()).removed.context).toBe(1);
    expect(await stored('context', first.contextDigest)).toBe(false);
  });

  it('keeps the step logs of a build still recorded, removes old unreferenced ones', async () => {
    const put = async (text: string) => {
      const up = await side.ingest('log', 1 << 20);
      await up.write(Buffer.from(text));
      return (await up.commit()).digest;
    };
    const listed = await put(`listed ${nonce()}\n`);
    const orphan = await put(`orphan ${nonce()}\n`);
    const b = await submitNew();
    await c.cancel(b.buildId);
    await conn.hset(keys.logs(b.buildId), `sha256:${'a'.repeat(64)}`, JSON.stringify({ digest: listed, size: 1 }));
    await age('log', listed);
    await age('log', orphan);

    const r = await api.sweepStore();
    expect(r.removed.log).toBe(1);
    expect(await stored('log', listed)).toBe(true);
    expect(await stored('log', orphan)).toBe(false);
    // The log index expired with the record: the log goes at the next pass.
    await conn.del(keys.logs(b.buildId));
    expect((await api.sweepStore()).removed.log).toBe(1);
    expect(await stored('log', listed)).toBe(false);
  });

  it('drops builds whose record expired from the build lists, and keeps the others listed', async () => {
    const kept = await submitNew();
    const expired = await submitNew();
    await c.cancel(expired.buildId);
    const listed = async () => (await c.list({ limit: 5000 })).map((b) => b.buildId);
    expect(await listed()).toEqual(expect.arrayContaining([kept.buildId, expired.buildId]));
    // What the record's TTL does once the build has ended.
    await conn.del(keys.build(expired.buildId));

    const r = await api.sweepStore();
    expect(r.expiredBuildIds).toBe(1);
    expect(await conn.zscore(keys.allBuilds, expired.buildId)).toBeNull();
    expect(await conn.zscore(keys.clientBuilds('alice'), expired.buildId)).toBeNull();
    expect(await conn.zscore(keys.allBuilds, kept.buildId)).not.toBeNull();
    expect(await conn.zscore(keys.clientBuilds('alice'), kept.buildId)).not.toBeNull();
    expect(await listed()).toContain(kept.buildId);
    expect((await api.sweepStore()).expiredBuildIds).toBe(0);
    await c.cancel(kept.buildId);
  });
});

describe('serve --store-keep-duration', () => {
  it('refuses a keep duration too short to outlive an upload', async () => {
    const r = await runCli(['serve', '--redis', redis.url, '--token', `a=${TOKEN}`, '--store-keep-duration', '1m']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--store-keep-duration "1m": at least 10m/);
  });

  it('documents the retention flags', async () => {
    const r = await runCli(['help', 'serve']);
    expect(r.stdout).toMatch(/--store-keep-duration D/);
    expect(r.stdout).toMatch(/--store-gc-interval D/);
  });
});
