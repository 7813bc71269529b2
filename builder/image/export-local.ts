import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { BlobProvider } from '../../core/content.js';
import { platformDirName } from '../../core/platform.js';
import { applyLayer } from '../layers/index.js';
import { imagesOf, type BuiltImage } from './built-image.js';
import type { StoredImage } from './manifest.js';

/** `--output type=local`: the final root filesystem, layer over layer, into `dest`; one subdirectory per platform (`linux_arm64`, as buildx) for an index. */
export async function exportLocalDir(store: BlobProvider, built: BuiltImage, dest: string, signal?: AbortSignal): Promise<void> {
  for (const { platform, image } of imagesOf(built)) await applyImage(store, image, platform ? path.join(dest, platformDirName(platform)) : dest, signal);
}

async function applyImage(store: BlobProvider, image: StoredImage, dest: string, signal?: AbortSignal): Promise<void> {
  await mkdir(dest, { recursive: true });
  for (const l of image.layers) {
    await applyLayer(await store.open(l.digest, signal), l.mediaType, dest, signal ? { signal } : {});
  }
}
