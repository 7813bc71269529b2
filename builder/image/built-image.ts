import type { ContentStore } from '../../core/content.js';
import { MediaType, type Descriptor, type ImageIndex, type Platform } from '../../core/oci.js';
import { writeBlob } from '../../cache/index.js';
import type { StoredImage } from './manifest.js';

/** One platform's image of a multi-platform build. */
export interface PlatformImage {
  readonly platform: Platform;
  readonly image: StoredImage;
}

/**
 * What a build made: one image (a single platform, which gives a plain
 * manifest as before), or an OCI image index of one image per platform.
 */
export type BuiltImage =
  | { readonly kind: 'image'; readonly image: StoredImage }
  | { readonly kind: 'index'; readonly index: Descriptor; readonly images: readonly PlatformImage[] };

/**
 * The index of a multi-platform build, in the store: one manifest descriptor
 * per platform, in the order asked for, each with its platform (variant only
 * where the platform has one, e.g. arm/v7, as BuildKit writes them).
 */
export async function storeIndex(store: ContentStore, images: readonly PlatformImage[]): Promise<BuiltImage> {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: images.map(({ platform, image }) => ({
      ...image.manifest,
      platform: { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}) },
    })),
  };
  const b = await writeBlob(store, Buffer.from(JSON.stringify(index)));
  return { kind: 'index', index: { mediaType: MediaType.OciIndex, digest: b.digest, size: b.size }, images };
}

/** The descriptor a tag points at: the index, or the one manifest. */
export function topDescriptor(built: BuiltImage): Descriptor {
  return built.kind === 'index' ? built.index : built.image.manifest;
}

/** Every image of the build, with the platform its index entry names (undefined for a single image). */
export function imagesOf(built: BuiltImage): ReadonlyArray<{ readonly platform?: Platform; readonly image: StoredImage }> {
  return built.kind === 'index' ? built.images : [{ image: built.image }];
}
