import { mkdir } from 'node:fs/promises';
import type { BlobProvider } from '../../core/content.js';
import { applyLayer } from '../layers/index.js';
import type { StoredImage } from './manifest.js';

/** `--output type=local`: the final root filesystem, layer over layer, into `dest`. */
export async function exportLocalDir(store: BlobProvider, image: StoredImage, dest: string, signal?: AbortSignal): Promise<void> {
  await mkdir(dest, { recursive: true });
  for (const l of image.layers) {
    await applyLayer(await store.open(l.digest, signal), l.mediaType, dest, signal ? { signal } : {});
  }
}
