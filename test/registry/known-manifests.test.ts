import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBlobHomes } from '../../builder/blob-homes.js';
import { LocalContentStore } from '../../cache/index.js';
import { sha256 } from '../../core/digest.js';
import { MediaType, type ImageIndex } from '../../core/oci.js';
import { RegistryClient, RegistryError, type PullOptions } from '../../registry-client/index.js';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTestImage, type TestImage } from './image-fixture.js';

/**
 * Resolving an image this state root has pulled: one HEAD, no GET (Docker Hub
 * counts manifest GETs against its pull limits, not HEADs), and never bytes
 * that the repository did not serve here before. Each "process" is a client
 * of its own over the same store and blob homes, as the CLI is from one build
 * to the next.
 */
describe('resolving known images', () => {
  let reg: TestRegistry;
  let proxy: CountingProxy;
  let tmp: string;
  let src: LocalContentStore;
  let n = 0;

  /** A state root's store and blob homes, and a client per process on it. */
  const root = () => {
    const dir = path.join(tmp, `root-${n++}`);
    const store = new LocalContentStore(path.join(dir, 'content'));
    const homes = new FileBlobHomes(path.join(dir, 'blob-homes'));
    const process = () => new RegistryClient({ blobHomes: homes });
    return { store, homes, process };
  };
  const since = (start: number) => proxy.requests.slice(start).map((r) => `${r.method} ${r.path}`);
  const push = async (ref: string, img: TestImage) => {
    await using c = new RegistryClient();
    await c.pushImage(`${reg.host}/${ref}`, img, src);
  };
  /** A state root whose first process pulled `ref` through the proxy, as a first build does. */
  const pulled = async (ref: string, opts: PullOptions = {}) => {
    const r = root();
    {
      await using first = r.process();
      await first.pullImage(`${proxy.host}/${ref}`, r.store, opts);
    }
    await r.homes.flush();
    return r;
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-known-'));
    reg = await startRegistry();
    proxy = await startCountingProxy(reg.url);
    src = new LocalContentStore(path.join(tmp, 'src'));
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('a pulled image resolves again with one HEAD and no GET', async () => {
    const img = await makeTestImage(src);
    await push('k/single:1', img);
    const r = await pulled('k/single:1');

    const start = proxy.requests.length;
    await using next = r.process();
    const again = await next.resolve(`${proxy.host}/k/single:1`, undefined, undefined, r.store);
    expect(since(start)).toEqual(['HEAD /v2/k/single/manifests/1']);
    expect(again.manifestDigest).toBe(img.manifestDigest);
    expect(again.manifestBytes.equals(img.manifest)).toBe(true);
    expect(again.configDigest).toBe(img.config.digest);
  });

  it('an index is kept when fetched: after one pull, resolving it again is one HEAD', async () => {
    const amd64 = await makeTestImage(src);
    const arm64 = await makeTestImage(src);
    await push('k/multi:amd64', amd64);
    await push('k/multi:arm64', arm64);
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        { mediaType: MediaType.OciManifest, digest: amd64.manifestDigest, size: amd64.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MediaType.OciManifest, digest: arm64.manifestDigest, size: arm64.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    };
    const indexBytes = Buffer.from(JSON.stringify(index));
    {
      await using c = new RegistryClient();
      await c.putManifest(`${reg.host}/k/multi:1`, indexBytes, MediaType.OciIndex);
    }
    let start = proxy.requests.length;
    const r = await pulled('k/multi:1', { platform: { os: 'linux', architecture: 'arm64' } });
    // The first resolution asked as it always did, and kept the index it got.
    expect(since(start).filter((q) => q.includes('/manifests/'))).toEqual([
      'HEAD /v2/k/multi/manifests/1',
      'GET /v2/k/multi/manifests/1',
      `GET /v2/k/multi/manifests/${arm64.manifestDigest}`,
    ]);
    expect(await r.store.stat(sha256(indexBytes))).toEqual({ digest: sha256(indexBytes), size: indexBytes.length });

    start = proxy.requests.length;
    await using next = r.process();
    const again = await next.resolve(`${proxy.host}/k/multi:1`, { os: 'linux', architecture: 'arm64' }, undefined, r.store);
    expect(since(start)).toEqual(['HEAD /v2/k/multi/manifests/1']);
    expect(again.manifestDigest).toBe(arm64.manifestDigest);
    expect(again.index?.digest).toBe(sha256(indexBytes));
  });

  it('a tag that moved is fetched: the HEAD names a digest this store does not hold', async () => {
    const old = await makeTestImage(src);
    const moved = await makeTestImage(src);
    await push('k/moving:1', old);
    const r = await pulled('k/moving:1');
    await push('k/moving:1', moved);

    const start = proxy.requests.length;
    await using next = r.process();
    const now = await next.resolve(`${proxy.host}/k/moving:1`, undefined, undefined, r.store);
    expect(since(start).filter((q) => q.includes('/manifests/'))).toEqual(['HEAD /v2/k/moving/manifests/1', 'GET /v2/k/moving/manifests/1']);
    expect(now.manifestDigest).toBe(moved.manifestDigest);
  });

  it('bytes a repository never served here are not used, though the store holds them under the digest it names', async () => {
    const img = await makeTestImage(src);
    await push('k/served:1', img);
    // The same manifest under another repository, which this root never pulled from.
    await push('k/other:1', img);
    const r = await pulled('k/served:1');

    const start = proxy.requests.length;
    await using next = r.process();
    const got = await next.resolve(`${proxy.host}/k/other:1`, undefined, undefined, r.store);
    expect(since(start).filter((q) => q.includes('/manifests/'))).toEqual(['HEAD /v2/k/other/manifests/1', 'GET /v2/k/other/manifests/1']);
    expect(got.manifestDigest).toBe(img.manifestDigest);
  });

  it('a digest reference still asks the registry: local bytes are used only while it grants them', async () => {
    const img = await makeTestImage(src);
    await push('k/pinned:1', img);
    const r = await pulled(`k/pinned@${img.manifestDigest}`);
    const pinned = `${proxy.host}/k/pinned@${img.manifestDigest}`;

    let start = proxy.requests.length;
    {
      await using next = r.process();
      expect((await next.resolve(pinned, undefined, undefined, r.store)).manifestDigest).toBe(img.manifestDigest);
    }
    expect(since(start)).toEqual([`HEAD /v2/k/pinned/manifests/${img.manifestDigest}`]);

    // Gone from the registry: the bytes this store holds do not stand in for it.
    {
      await using c = new RegistryClient();
      await c.deleteManifest(`${reg.host}/k/pinned@${img.manifestDigest}`);
    }
    start = proxy.requests.length;
    await using last = r.process();
    const err = await last.resolve(pinned, undefined, undefined, r.store).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).message).toMatch(/MANIFEST_UNKNOWN|not found|404/i);
    expect(since(start)).toEqual([`HEAD /v2/k/pinned/manifests/${img.manifestDigest}`, `GET /v2/k/pinned/manifests/${img.manifestDigest}`]);
  });

  it("a pull right after the build's resolution fetches neither manifest nor config again; a resolution asks every time", async () => {
    const img = await makeTestImage(src);
    await push('k/handoff:1', img);
    const r = root();
    const start = proxy.requests.length;
    await using c = r.process();
    // The frontend resolves the tag; the first step that needs the files pulls the pinned image.
    const resolved = await c.resolve(`${proxy.host}/k/handoff:1`, undefined, undefined, r.store);
    const pinned = `${proxy.host}/k/handoff@${resolved.manifestDigest}`;
    await c.pullImage(pinned, r.store);
    const gets = since(start).filter((q) => q.startsWith('GET '));
    expect(gets.filter((q) => q.includes('/manifests/'))).toEqual(['GET /v2/k/handoff/manifests/1']);
    expect(gets.filter((q) => q.endsWith(img.config.digest))).toHaveLength(1);
    expect(gets.filter((q) => img.layers.some((l) => q.endsWith(l.digest)))).toHaveLength(img.layers.length);

    // A resolution is the registry's word on the image now, not a memory of it.
    const again = proxy.requests.length;
    await c.resolve(pinned);
    expect(since(again).filter((q) => q.includes('/manifests/'))).toEqual([`GET /v2/k/handoff/manifests/${img.manifestDigest}`]);
  });

  it('a HEAD without Docker-Content-Digest is answered by a GET', async () => {
    const img = await makeTestImage(src);
    await push('k/nodigest:1', img);
    const r = await pulled('k/nodigest:1');

    proxy.hideHeadDigests = true;
    try {
      const start = proxy.requests.length;
      await using next = r.process();
      const got = await next.resolve(`${proxy.host}/k/nodigest:1`, undefined, undefined, r.store);
      expect(since(start)).toEqual(['HEAD /v2/k/nodigest/manifests/1', 'GET /v2/k/nodigest/manifests/1']);
      expect(got.manifestDigest).toBe(img.manifestDigest);
    } finally {
      proxy.hideHeadDigests = false;
    }
  });
});
