import type { ContentStore } from '../../core/content.js';
import type { Digest } from '../../core/digest.js';
import { readAllBounded } from '../../core/streams.js';
import { parseReference, type Reference, type RegistryClient } from '../../registry-client/index.js';
import { imagesOf, topDescriptor, type BuiltImage } from './built-image.js';
import type { StoredImage } from './manifest.js';

type PushOpts = { signal?: AbortSignal; onProgress?: (id: string, current: number, total?: number) => void };

/**
 * Push a build to every ref: blobs first (the client checks what exists),
 * then each manifest; an index goes last, after every platform's manifest is
 * in the repository by digest, so a tag never names an incomplete index.
 */
export async function exportToRegistry(
  client: RegistryClient,
  store: ContentStore,
  built: BuiltImage,
  refs: readonly string[],
  opts: PushOpts = {},
): Promise<{ pushed: string[]; digest: Digest }> {
  const top = topDescriptor(built);
  const pushed: string[] = [];
  for (const r of refs) {
    const ref = parseReference(r);
    if (built.kind === 'index') {
      const byDigest: Reference = { registry: ref.registry, repository: ref.repository };
      for (const { image } of imagesOf(built)) await pushManifest(client, store, image, byDigest, opts);
      const index = await readAllBounded(await store.open(top.digest, opts.signal), 4 << 20, 'image index');
      await client.pushImage(ref, { manifest: index, mediaType: top.mediaType, blobs: [] }, store, opts.signal ? { signal: opts.signal } : {});
    } else {
      await pushManifest(client, store, built.image, ref, opts);
    }
    pushed.push(r);
  }
  return { pushed, digest: top.digest };
}

async function pushManifest(client: RegistryClient, store: ContentStore, image: StoredImage, ref: Reference, opts: PushOpts): Promise<void> {
  const manifest = await readAllBounded(await store.open(image.manifest.digest, opts.signal), 4 << 20, 'manifest');
  await client.pushImage(ref, { manifest, mediaType: image.manifest.mediaType, blobs: [image.config, ...image.layers] }, store, {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
}
