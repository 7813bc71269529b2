import { mkdir } from 'node:fs/promises';
import { applyLayer } from '../layers/index.js';
/** `--output type=local`: the final root filesystem, layer over layer, into `dest`. */
export async function exportLocalDir(store, image, dest, signal) {
    await mkdir(dest, { recursive: true });
    for (const l of image.layers) {
        await applyLayer(await store.open(l.digest, signal), l.mediaType, dest, signal ? { signal } : {});
    }
}
//# sourceMappingURL=export-local.js.map