import type { ContentStore } from '../../core/content.js';
import type { Digest } from '../../core/digest.js';
import { readAllBounded } from '../../core/streams.js';
import { parseReference, type RegistryClient } from '../../registry-client/index.js';
import type { StoredImage } from './manifest.js';

/** Push a stored image to every ref; blobs first (the client checks what exists), the manifest last. */
export async function exportToRegistry(
  client: RegistryClient,
  store: ContentStore,
  image: StoredImage,
  refs: readonly string[],
  opts: { signal?: AbortSignal; onProgress?: (id: string, current: number, total?: number) => void } = {},
): Promise<{ pushed: string[]; digest: Digest }> {
  const manifest = await readAllBounded(await store.open(image.manifest.digest, opts.signal), 4 << 20, 'manifest');
  const pushed: string[] = [];
  for (const r of refs) {
    const ref = parseReference(r);
    await client.pushImage(ref, { manifest, mediaType: image.manifest.mediaType, blobs: [image.config, ...image.layers] }, store, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
    pushed.push(r);
  }
  return { pushed, digest: image.manifest.digest };
}
