import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { BlobProvider } from '../../core/content.js';
import { digestHex } from '../../core/digest.js';
import { MediaType, type Descriptor, type ImageIndex } from '../../core/oci.js';
import { imagesOf, topDescriptor, type BuiltImage } from './built-image.js';

/**
 * Write an OCI image layout as a tar (`oci-layout`, `index.json`, `blobs/sha256/…`),
 * streaming each blob from the store. Written to a temp name and renamed, so a
 * failed export leaves no half file under the requested name.
 */
export async function exportOciLayoutTar(store: BlobProvider, built: BuiltImage, dest: string, refName?: string, signal?: AbortSignal): Promise<void> {
  const pack = tar.pack();
  const tmp = `${dest}.tmp-${process.pid}`;
  const done = pipeline(pack, createWriteStream(tmp, { mode: 0o644 }), signal ? { signal } : {});
  try {
    const entry = (name: string, body: string | Buffer) =>
      new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body, (e) => (e ? reject(e) : resolve())));
    await entry('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    // A multi-platform build's index.json names its image index (as BuildKit's OCI exporter does), which names each platform's manifest.
    const top = topDescriptor(built);
    const topDesc: Descriptor = refName ? { ...top, annotations: refAnnotations(refName) } : top;
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [topDesc] };
    await entry('index.json', JSON.stringify(index));
    const seen = new Set<string>();
    const blobs = [...(built.kind === 'index' ? [built.index] : []), ...imagesOf(built).flatMap(({ image }) => [image.manifest, image.config, ...image.layers])];
    for (const d of blobs) {
      if (seen.has(d.digest)) continue;
      seen.add(d.digest);
      const body = await store.open(d.digest, signal);
      await new Promise<void>((resolve, reject) => {
        const w = pack.entry({ name: `blobs/sha256/${digestHex(d.digest)}`, size: d.size, mode: 0o644, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve()));
        body.on('error', reject);
        body.pipe(w);
      });
    }
    pack.finalize();
    await done;
    await rename(tmp, dest);
  } catch (err) {
    pack.destroy();
    await done.catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * As BuildKit's OCI exporter: `ref.name` is the tag alone (the spec's grammar,
 * and what `umoci --image DIR:TAG` and `skopeo oci:DIR:TAG` look up), the full
 * name goes in containerd's annotation.
 */
export function refAnnotations(ref: string): Record<string, string> {
  const at = ref.indexOf('@');
  const name = at < 0 ? ref : ref.slice(0, at);
  const lastSlash = name.lastIndexOf('/');
  const colon = name.indexOf(':', lastSlash + 1);
  const tag = colon < 0 ? (at < 0 ? 'latest' : undefined) : name.slice(colon + 1);
  return { 'io.containerd.image.name': ref, ...(tag !== undefined ? { 'org.opencontainers.image.ref.name': tag } : {}) };
}
