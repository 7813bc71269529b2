import { readAllBounded } from '../../core/streams.js';
import { parseReference } from '../../registry-client/index.js';
/** Push a stored image to every ref; blobs first (the client checks what exists), the manifest last. */
export async function exportToRegistry(client, store, image, refs, opts = {}) {
    const manifest = await readAllBounded(await store.open(image.manifest.digest, opts.signal), 4 << 20, 'manifest');
    const pushed = [];
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
//# sourceMappingURL=export-registry.js.map