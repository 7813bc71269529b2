import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Digest } from '../../core/digest.js';
import { DEFAULT_PLATFORM, MediaType, type ImageConfig } from '../../core/oci.js';
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
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-base-'));
  try {
    const rootfs = path.join(dir, 'rootfs');
    await makeBusyboxRootfs(rootfs);
    const store = new LocalContentStore(path.join(dir, 'store'));
    const gz = await writeLayer([{ type: 'bind', source: rootfs, options: ['rbind', 'ro'] }], store, { sourceDateEpoch: 1704067200 });
    if (!gz) throw new Error('busybox rootfs produced an empty layer');
    let layer = gz;
    if (opts.compression === 'zstd') {
      const zst = await run('sh', ['-c', 'gzip -dc "$1" | zstd -q -c', 'sh', store.blobPath(gz.digest)], { encoding: 'buffer', maxBuffer: 64 << 20 });
      const blob = await writeBlob(store, zst.stdout);
      layer = { mediaType: MediaType.OciLayerZstd, digest: blob.digest, size: blob.size, diffId: gz.diffId };
    }
    const config: ImageConfig = {
      created: '2024-01-01T00:00:00Z',
      architecture: DEFAULT_PLATFORM.architecture,
      os: DEFAULT_PLATFORM.os,
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['sh'], Labels: { 'test.base': 'busybox' } },
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created: '2024-01-01T00:00:00Z', created_by: 'test fixture: busybox-static' }],
    };
    const cfg = await writeBlob(store, Buffer.from(JSON.stringify(config)));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
        layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }],
      }),
    );
    const client = new RegistryClient({});
    return await client.pushImage(
      parseReference(`${registryHost}/${repo}`),
      {
        manifest,
        mediaType: MediaType.OciManifest,
        blobs: [
          { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size },
          { mediaType: layer.mediaType, digest: layer.digest, size: layer.size },
        ],
      },
      store,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
