import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultServer, type FaultServer } from '../helpers/fault-server.js';
import { inspectRemote, startCliFixture, type CliFixture } from './fixture.js';

/**
 * `buildlite push` in a process of its own mounts the base image's layers from
 * the repository the build pulled them from (what the state root remembers),
 * as buildah does, instead of uploading them again.
 */
describe('buildlite push: base layers are mounted, not uploaded', () => {
  let f: CliFixture;
  let proxy: FaultServer;

  beforeAll(async () => {
    f = await startCliFixture('push-mount');
    // No faults: the proxy only records what the pushes send (the registry behind it is real).
    proxy = await startFaultServer(f.registry.url);
  });
  afterAll(async () => {
    await proxy?.stop();
    await f?.close();
  });

  async function baseLayers(): Promise<string[]> {
    const res = await fetch(`${f.registry.url}/v2/library/busybox/manifests/latest`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(res.status).toBe(200);
    const m = (await res.json()) as { layers: { digest: string }[] };
    expect(m.layers.length).toBeGreaterThan(0);
    return m.layers.map((l) => l.digest);
  }

  const uploadsOf = (digest: string) => proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/') && r.path.includes(`digest=${encodeURIComponent(digest)}`));
  const mountsOf = (digest: string) => proxy.requests.filter((r) => r.method === 'POST' && r.path.includes(`mount=${encodeURIComponent(digest)}`));

  /** Builds (without pushing) the base plus one file of its own, tagged `ref`. */
  async function buildOwnLayer(name: string, ref: string): Promise<void> {
    const ctx = await f.context(name, {
      [`${name}.txt`]: `${name}\n`,
      Dockerfile: `FROM ${proxy.host}/library/busybox:latest\nCOPY ${name}.txt /${name}.txt\n`,
    });
    const b = await f.build(['--progress', 'plain', '-t', ref, ctx]);
    expect(b.code, b.stderr).toBe(0);
  }

  it('a later push mounts each base layer from library/busybox; the image is whole', async () => {
    const ref = `${proxy.host}/cli/mounted:1`;
    await buildOwnLayer('hello', ref);

    proxy.requests.length = 0;
    const p = await f.cli(['push', '--root', f.root, ref]);
    expect(p.code, p.stderr).toBe(0);

    const layers = await baseLayers();
    for (const d of layers) {
      const mounts = mountsOf(d);
      expect(mounts.map((r) => [r.path.includes('from=library%2Fbusybox'), r.status])).toEqual([[true, 201]]);
      expect(uploadsOf(d)).toEqual([]);
    }
    // Our own layer (the COPY) had nowhere to come from: it was uploaded.
    const img = await inspectRemote(`${f.registry.host}/cli/mounted:1`);
    const own = img.manifest.layers.map((l) => l.digest).filter((d) => !layers.includes(d));
    expect(own).toHaveLength(1);
    expect(uploadsOf(own[0]!)).toHaveLength(1);
  });

  it('a push to another repository mounts the layers from the one pushed before', async () => {
    const first = `${proxy.host}/cli/first:1`;
    await buildOwnLayer('other', first);
    expect((await f.cli(['push', '--root', f.root, first])).code).toBe(0);
    const img = await inspectRemote(`${f.registry.host}/cli/first:1`);
    const own = img.manifest.layers.at(-1)!.digest;

    proxy.requests.length = 0;
    const p = await f.cli(['push', '--root', f.root, first, `${proxy.host}/cli/second:1`]);
    expect(p.code, p.stderr).toBe(0);
    expect(mountsOf(own).map((r) => [r.path.includes('from=cli%2Ffirst'), r.status])).toEqual([[true, 201]]);
    expect(uploadsOf(own)).toEqual([]);
  });
});
