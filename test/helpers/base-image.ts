import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Digest } from '../../core/digest.js';
import { DEFAULT_PLATFORM, MediaType, type ImageConfig, type Platform } from '../../core/oci.js';
import { LocalContentStore, writeBlob } from '../../cache/index.js';
import { writeLayer } from '../../builder/layers/index.js';
import { parseReference, RegistryClient } from '../../registry-client/index.js';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

const run = promisify(execFile);

/**
 * The tests' base image: busybox-static with applet links and a user database
 * (root, app 1000, nobody), one gzip layer (or, with `compression: 'zstd'`,
 * the same tar as a zstd layer, made by the zstd tool), pushed as
 * `library/busybox:latest` to the given loopback registry. Returns the manifest digest.
 */
export async function pushBusyboxBase(registryHost: string, repo = 'library/busybox:latest', opts: { compression?: 'gzip' | 'zstd' } = {}): Promise<Digest> {
  return pushImageOf(registryHost, repo, [makeBusyboxRootfs], opts);
}

/**
 * An image whose layers are made by `fill` (one function per layer, each
 * given an empty directory to fill), pushed to `REGISTRY/repo`. Returns the
 * manifest digest; `layers` receives each layer's descriptor when given.
 */
export async function pushImageOf(
  registryHost: string,
  repo: string,
  fill: ReadonlyArray<(dir: string) => Promise<void>>,
  opts: { compression?: 'gzip' | 'zstd'; layers?: Array<{ digest: Digest; size: number }>; platform?: Platform } = {},
): Promise<Digest> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-base-'));
  try {
    const store = new LocalContentStore(path.join(dir, 'store'));
    const layers: Array<{ mediaType: string; digest: Digest; size: number; diffId: Digest }> = [];
    for (const [i, f] of fill.entries()) {
      const rootfs = path.join(dir, `layer-${i}`);
      await mkdir(rootfs);
      await f(rootfs);
      const gz = await writeLayer([{ type: 'bind', source: rootfs, options: ['rbind', 'ro'] }], store, { sourceDateEpoch: 1704067200 });
      if (!gz) throw new Error(`layer ${i} is empty`);
      let layer = gz;
      if (opts.compression === 'zstd') {
        const zst = await run('sh', ['-c', 'gzip -dc "$1" | zstd -q -c', 'sh', store.blobPath(gz.digest)], { encoding: 'buffer', maxBuffer: 64 << 20 });
        const blob = await writeBlob(store, zst.stdout);
        layer = { mediaType: MediaType.OciLayerZstd, digest: blob.digest, size: blob.size, diffId: gz.diffId, unpackedSize: gz.unpackedSize };
      }
      layers.push(layer);
      opts.layers?.push({ digest: layer.digest, size: layer.size });
    }
    const config: ImageConfig = {
      created: '2024-01-01T00:00:00Z',
      architecture: (opts.platform ?? DEFAULT_PLATFORM).architecture,
      os: (opts.platform ?? DEFAULT_PLATFORM).os,
      ...(opts.platform?.variant ? { variant: opts.platform.variant } : {}),
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['sh'], Labels: { 'test.base': 'busybox' } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'test fixture: busybox-static' })),
    };
    const cfg = await writeBlob(store, Buffer.from(JSON.stringify(config)));
    const descriptors = layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
        layers: descriptors,
      }),
    );
    const client = new RegistryClient({});
    return await client.pushImage(
      parseReference(`${registryHost}/${repo}`),
      {
        manifest,
        mediaType: MediaType.OciManifest,
        blobs: [{ mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size }, ...descriptors],
      },
      store,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
