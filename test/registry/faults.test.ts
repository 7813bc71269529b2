import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalContentStore } from '../../cache/index.js';
import type { Digest } from '../../core/digest.js';
import { RegistryClient, RegistryError, staticCredentials } from '../../registry-client/index.js';
import { startFaultServer, startOriginRecorder, type FaultServer } from '../helpers/fault-server.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTestImage, type TestImage } from './image-fixture.js';

const USER = 'ci';
const PASSWORD = 'fault-secret-Pw9';
const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

describe('registry faults through a real proxy', () => {
  let reg: TestRegistry;
  let fault: FaultServer;
  let tmp: string;
  let src: LocalContentStore;
  let img: TestImage;
  let n = 0;
  const client = (opts: { retries?: number; timeouts?: { headersMs?: number; idleMs?: number } } = {}) =>
    new RegistryClient({ credentials: staticCredentials({ [fault.host]: { username: USER, password: PASSWORD } }), maxRetryDelayMs: 2000, ...opts });
  const fresh = () => new LocalContentStore(path.join(tmp, `store-${n++}`));

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-faults-'));
    reg = await startRegistry({ htpasswd: { user: USER, password: PASSWORD } });
    fault = await startFaultServer(reg.url);
    src = new LocalContentStore(path.join(tmp, 'src'));
    img = await makeTestImage(src, { layers: 3, layerBytes: 64 * 1024 });
    await using c = client();
    await c.pushImage(`${fault.host}/f/base:1`, img, src);
  });
  afterAll(async () => {
    await fault?.stop();
    await reg?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('the 2nd blob upload fails with 500: the push retries and succeeds', async () => {
    const fresh = await makeTestImage(src, { layers: 3 });
    fault.faults = { failUpload: { nth: 2 } };
    const start = fault.requests.length;
    await using c = client();
    expect(await c.pushImage(`${fault.host}/f/upload:1`, fresh, src)).toBe(fresh.manifestDigest);
    const reqs = fault.requests.slice(start);
    expect(reqs.filter((r) => r.fault === 'fail-upload')).toHaveLength(1);
    expect(reqs.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/') && r.status === 201)).toHaveLength(fresh.blobs.length);
    fault.faults = {};
  });

  it('every upload fails: a clear retryable REGISTRY error, and no manifest is PUT', async () => {
    const fresh = await makeTestImage(src, { layers: 1 });
    fault.faults = { failUpload: { nth: 1, times: 1000 } };
    const start = fault.requests.length;
    await using c = client({ retries: 0 });
    const err = (await c.pushImage(`${fault.host}/f/never:1`, fresh, src).catch((e: unknown) => e)) as RegistryError;
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.code).toBe('REGISTRY');
    expect(err.status).toBe(500);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/injected upload failure/);
    expect(err.message).not.toMatch(/_state=(?!REDACTED)/);
    expect(fault.requests.slice(start).some((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toBe(false);
    fault.faults = {};
  });

  it('429 with Retry-After is honoured', async () => {
    // Only this test's own request: a request still in flight from an earlier test must not take the fault.
    fault.faults = { throttle: { times: 1, retryAfter: 1, path: '/v2/f/base/manifests/' } };
    await using c = client();
    const t0 = Date.now();
    const r = await c.resolve(`${fault.host}/f/base:1`);
    expect(r.manifestDigest).toBe(img.manifestDigest);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(fault.requests.some((q) => q.fault === 'throttle')).toBe(true);
  });

  it('resolve reads a config the local store holds instead of fetching it; a wrong local copy is not trusted', async () => {
    await using c = client();
    const configGets = (from: number) => fault.requests.slice(from).filter((q) => q.method === 'GET' && q.path.endsWith(`/blobs/${img.config.digest}`));
    let start = fault.requests.length;
    const fetched = await c.resolve(`${fault.host}/f/base:1`, undefined, undefined, fresh());
    expect(configGets(start)).toHaveLength(1);

    start = fault.requests.length;
    const local = await c.resolve(`${fault.host}/f/base:1`, undefined, undefined, src);
    expect(configGets(start)).toHaveLength(0);
    expect(local.configBytes.equals(fetched.configBytes)).toBe(true);
    expect(local.manifestDigest).toBe(img.manifestDigest);

    // A store that answers with other bytes under the digest is bypassed, not believed.
    const lying = { stat: (d: Digest) => src.stat(d), open: async () => Readable.from([Buffer.alloc(img.config.size, 0x20)]) };
    start = fault.requests.length;
    const checked = await c.resolve(`${fault.host}/f/base:1`, undefined, undefined, lying);
    expect(configGets(start)).toHaveLength(1);
    expect(checked.configBytes.equals(fetched.configBytes)).toBe(true);
  });

  it('a re-push to a tag that already names the manifest sends nothing; a tag on other bytes is pushed', async () => {
    const image = await makeTestImage(src, { layers: 2 });
    const other = await makeTestImage(src, { layers: 1 });
    await using c = client();
    const writes = (from: number) => fault.requests.slice(from).filter((q) => q.method !== 'GET');
    await c.pushImage(`${fault.host}/f/repush:1`, image, src);

    let start = fault.requests.length;
    expect(await c.pushImage(`${fault.host}/f/repush:1`, image, src)).toBe(image.manifestDigest);
    expect(writes(start)).toEqual([]);
    expect(fault.requests.slice(start).map((q) => `${q.method} ${q.path}`)).toEqual(['GET /v2/f/repush/manifests/1']);

    // The tag now names other bytes: blobs are checked and the manifest is put again.
    await c.pushImage(`${fault.host}/f/repush:1`, other, src);
    start = fault.requests.length;
    await c.pushImage(`${fault.host}/f/repush:1`, image, src);
    expect(writes(start).filter((q) => q.method === 'HEAD' && q.path.includes('/blobs/'))).toHaveLength(image.blobs.length);
    expect(writes(start).filter((q) => q.method === 'PUT' && q.path === '/v2/f/repush/manifests/1')).toHaveLength(1);
    expect((await c.resolve(`${fault.host}/f/repush:1`)).manifestDigest).toBe(image.manifestDigest);
  });

  it('every blob is asked about before it is sent or mounted, so a push writes nothing the repository holds', async () => {
    const image = await makeTestImage(src, { layers: 2 });
    await using c = client();
    const since = (from: number, method: string, part: string) => fault.requests.slice(from).filter((q) => q.method === method && q.path.includes(part) && q.status !== 401);
    const uploads = (from: number) => since(from, 'PUT', '/blobs/uploads/').filter((q) => q.status === 201);

    let start = fault.requests.length;
    expect(await c.pushImage(`${fault.host}/f/first:1`, image, src)).toBe(image.manifestDigest);
    expect(since(start, 'HEAD', '/blobs/').map((q) => q.status)).toEqual(image.blobs.map(() => 404));
    expect(uploads(start)).toHaveLength(image.blobs.length);

    // Another tag of the same repository: every blob is found by its HEAD and none is written again.
    start = fault.requests.length;
    await c.pushImage(`${fault.host}/f/first:2`, image, src);
    expect(since(start, 'HEAD', '/blobs/').map((q) => q.status)).toEqual(image.blobs.map(() => 200));
    expect(since(start, 'POST', '/blobs/uploads/')).toEqual([]);

    // Another repository: each blob is asked about, then mounted from where it is known.
    start = fault.requests.length;
    await c.pushImage(`${fault.host}/f/first-other:1`, image, src);
    expect(since(start, 'HEAD', '/blobs/').map((q) => q.status)).toEqual(image.blobs.map(() => 404));
    expect(since(start, 'POST', 'mount=').filter((q) => q.status === 201)).toHaveLength(image.blobs.length);
    expect(uploads(start)).toEqual([]);
    for (const tag of ['first:1', 'first:2', 'first-other:1']) expect((await c.resolve(`${fault.host}/f/${tag}`)).manifestDigest).toBe(image.manifestDigest);
  });

  it('a manifest refused for a blob it has just been given (MANIFEST_BLOB_UNKNOWN) is put again after the blobs are checked; other refusals and a refusal that lasts fail', async () => {
    const image = await makeTestImage(src, { layers: 1 });
    await using c = client({ retries: 0 });
    const manifestPuts = (from: number) => fault.requests.slice(from).filter((q) => q.method === 'PUT' && q.path.includes('/manifests/') && q.status !== 401);
    const heads = (from: number) => fault.requests.slice(from).filter((q) => q.method === 'HEAD' && q.path.includes('/blobs/') && q.status !== 401);

    // Twice refused, as a registry that read a link another push was rewriting: the third PUT lands.
    fault.faults = { refuseManifest: { times: 2, code: 'MANIFEST_BLOB_UNKNOWN', detail: image.layers[0]!.digest } };
    let start = fault.requests.length;
    expect(await c.pushImage(`${fault.host}/f/refused:1`, image, src)).toBe(image.manifestDigest);
    expect(manifestPuts(start).map((q) => q.status)).toEqual([400, 400, 201]);
    // Every blob asked about again before each new try (and found).
    expect(heads(start)).toHaveLength(image.blobs.length * 3);
    expect((await c.resolve(`${fault.host}/f/refused:1`)).manifestDigest).toBe(image.manifestDigest);

    // A refusal that lasts: four tries, then the registry's reason.
    fault.faults = { refuseManifest: { times: 100, code: 'MANIFEST_BLOB_UNKNOWN' } };
    start = fault.requests.length;
    const lasting = (await c.pushImage(`${fault.host}/f/refused:2`, image, src).catch((e: unknown) => e)) as RegistryError;
    expect(lasting).toBeInstanceOf(RegistryError);
    expect(lasting.message).toContain('MANIFEST_BLOB_UNKNOWN');
    expect(manifestPuts(start)).toHaveLength(4);

    // Any other refusal is the push's answer at once.
    fault.faults = { refuseManifest: { times: 100, code: 'MANIFEST_INVALID' } };
    start = fault.requests.length;
    const invalid = (await c.pushImage(`${fault.host}/f/refused:3`, image, src).catch((e: unknown) => e)) as RegistryError;
    expect(invalid.message).toContain('MANIFEST_INVALID');
    expect(manifestPuts(start)).toHaveLength(1);
    fault.faults = {};
  });

  it('a connection reset mid-body is retried and the pull succeeds', async () => {
    fault.faults = { resetBlobGet: { times: 1 } };
    await using c = client();
    const store = fresh();
    const pulled = await c.pullImage(`${fault.host}/f/base:1`, store);
    expect(fault.requests.filter((q) => q.fault === 'reset')).toHaveLength(1);
    for (const l of pulled.manifest.layers) expect(await store.stat(l.digest)).toEqual({ digest: l.digest, size: l.size });
    fault.faults = {};
  });

  it('resets that never stop: the pull fails with a clear error and stores nothing partial', async () => {
    fault.faults = { resetBlobGet: { times: 1000 } };
    await using c = client({ retries: 1 });
    const store = fresh();
    await expect(c.pullImage(`${fault.host}/f/base:1`, store)).rejects.toThrow();
    for (const l of img.layers) expect(await store.stat(l.digest)).toBeUndefined();
    expect(await store.stat(img.manifestDigest)).toBeUndefined();
    fault.faults = {};
  });

  it('a blob whose bytes do not match its digest fails the pull with DIGEST_MISMATCH', async () => {
    fault.faults = { corruptBlob: true };
    await using c = client();
    const store = fresh();
    // The config is a blob too: corrupted, resolve already fails.
    const err = await c.pullImage(`${fault.host}/f/base:1`, store).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect((err as Error).message).toMatch(/digest mismatch/);
    for (const l of img.layers) expect(await store.stat(l.digest)).toBeUndefined();
    fault.faults = {};
  });

  it('blob GETs redirected to another origin get no credentials there', async () => {
    await using other = await startOriginRecorder(reg.url, basic);
    fault.faults = { redirectBlobsTo: other.origin };
    const start = fault.requests.length;
    await using c = client();
    const store = fresh();
    const pulled = await c.pullImage(`${fault.host}/f/base:1`, store);
    expect(pulled.manifestDigest).toBe(img.manifestDigest);
    expect(other.requests.length).toBe(img.blobs.length);
    for (const r of other.requests) expect(r.authorization).toBeUndefined();
    // …while the registry's own origin did get them.
    expect(fault.requests.slice(start).some((r) => r.authorization === basic)).toBe(true);
    fault.faults = {};
  });

  it('a blob HEAD that never gets response headers is retried after the headers timeout, and the push succeeds', async () => {
    const fresh = await makeTestImage(src, { layers: 1 });
    fault.faults = { stall: { times: 1, method: 'HEAD', path: '/v2/f/stall-once/blobs/' } };
    const start = fault.requests.length;
    await using c = client({ timeouts: { headersMs: 500 } });
    const t0 = Date.now();
    expect(await c.pushImage(`${fault.host}/f/stall-once:1`, fresh, src)).toBe(fresh.manifestDigest);
    const reqs = fault.requests.slice(start);
    const stalled = reqs.find((r) => r.fault === 'stall')!;
    expect(stalled.method).toBe('HEAD');
    // The same HEAD went out again after the stall, and the push went on to the manifest.
    expect(reqs.filter((r) => r.method === 'HEAD' && r.path === stalled.path).length).toBeGreaterThanOrEqual(2);
    expect(reqs.some((r) => r.method === 'PUT' && r.path.includes('/manifests/') && r.status === 201)).toBe(true);
    // Seconds, not the minute the old fixed timeout took (generous: the machine is shared).
    expect(Date.now() - t0).toBeLessThan(20_000);
    fault.faults = {};
  });

  it('a registry that never answers a HEAD: the push fails fast, naming the phase, the host and the attempts, and PUTs no manifest', async () => {
    const fresh = await makeTestImage(src, { layers: 1 });
    fault.faults = { stall: { times: 1000, method: 'HEAD', path: '/v2/f/stall-always/blobs/' } };
    const start = fault.requests.length;
    await using c = client({ retries: 1, timeouts: { headersMs: 500 } });
    const t0 = Date.now();
    const err = (await c.pushImage(`${fault.host}/f/stall-always:1`, fresh, src).catch((e: unknown) => e)) as RegistryError;
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.code).toBe('REGISTRY');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`timed out after 0.5s waiting for response headers from ${fault.host} (2 attempts)`);
    expect(err.message).toMatch(/^check blob sha256:[0-9a-f]{64}: HEAD http:\/\//);
    const reqs = fault.requests.slice(start);
    // The blob the error names was asked twice (retries: 1), each time left without an answer.
    const blob = /^check blob (sha256:[0-9a-f]{64})/.exec(err.message)![1]!;
    expect(reqs.filter((r) => r.fault === 'stall' && r.path.endsWith(blob))).toHaveLength(2);
    expect(reqs.some((r) => r.method === 'PUT' && r.path.includes('/manifests/'))).toBe(false);
    fault.faults = {};
  });

  it('a blob body that stops halfway is abandoned after the idle timeout and fetched again', async () => {
    fault.faults = { stallBlobBody: { times: 1 } };
    await using c = client({ timeouts: { idleMs: 500 } });
    const store = fresh();
    const pulled = await c.pullImage(`${fault.host}/f/base:1`, store);
    expect(fault.requests.filter((q) => q.fault === 'stall-body')).toHaveLength(1);
    for (const l of pulled.manifest.layers) expect(await store.stat(l.digest)).toEqual({ digest: l.digest, size: l.size });
    fault.faults = {};
  });

  it('timeouts are checked when the client is built', () => {
    expect(() => new RegistryClient({ timeouts: { headersMs: 0 } })).toThrow(/headers timeout/);
    expect(() => new RegistryClient({ timeouts: { connectMs: 1.5 } })).toThrow(/connect timeout/);
  });
});
