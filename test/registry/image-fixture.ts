import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import type { Ingester } from '../../core/content.js';
import { sha256, type Digest } from '../../core/digest.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageManifest } from '../../core/oci.js';

export interface TestImage {
  readonly manifest: Buffer;
  readonly mediaType: string;
  readonly manifestDigest: Digest;
  readonly config: Descriptor;
  readonly layers: Descriptor[];
  readonly diffIds: Digest[];
  /** Everything pushImage needs: config and layers. */
  readonly blobs: Descriptor[];
}

async function tarOf(files: Record<string, Buffer>): Promise<Buffer> {
  const p = pack();
  for (const [name, data] of Object.entries(files)) p.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function put(store: Ingester, bytes: Buffer): Promise<Digest> {
  const digest = sha256(bytes);
  const w = await store.ingest(`test-${digest}`, { digest, size: bytes.length });
  await new Promise<void>((resolve, reject) => w.end(bytes, (err?: Error | null) => (err ? reject(err) : resolve())));
  await w.commit();
  return digest;
}

/**
 * A tiny random image (gzip tar layers of random bytes) written into `store`;
 * with `sharing`, an image of its layers under a config of its own.
 */
export async function makeTestImage(store: Ingester, opts: { layers?: number; layerBytes?: number; sharing?: TestImage } = {}): Promise<TestImage> {
  const layers: Descriptor[] = [...(opts.sharing?.layers ?? [])];
  const diffIds: Digest[] = [...(opts.sharing?.diffIds ?? [])];
  for (let i = 0; !opts.sharing && i < (opts.layers ?? 2); i++) {
    const tar = await tarOf({ [`file-${i}.bin`]: randomBytes(opts.layerBytes ?? 4096) });
    const gz = gzipSync(tar);
    diffIds.push(sha256(tar));
    layers.push({ mediaType: MediaType.OciLayerGzip, digest: await put(store, gz), size: gz.length });
  }
  const cfg: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], Labels: { nonce: randomBytes(8).toString('hex') } },
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const config: Descriptor = { mediaType: MediaType.OciConfig, digest: await put(store, cfgBytes), size: cfgBytes.length };
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
  const manifest = Buffer.from(JSON.stringify(m));
  return { manifest, mediaType: MediaType.OciManifest, manifestDigest: sha256(manifest), config, layers, diffIds, blobs: [config, ...layers] };
}
