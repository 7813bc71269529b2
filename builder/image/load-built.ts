import type { ContentStore } from '../../core/content.js';
import { parseDigest } from '../../core/digest.js';
import { isIndexMediaType, type Descriptor, type ImageIndex } from '../../core/oci.js';
import { readJson } from '../../cache/blob-helpers.js';
import type { BuiltImage, PlatformImage } from './built-image.js';
import type { StoredImage } from './manifest.js';

/** A tagged build from the store: one image, or an index and each platform's image. */
export async function loadBuilt(store: ContentStore, desc: Descriptor): Promise<BuiltImage> {
  if (!isIndexMediaType(desc.mediaType)) return { kind: 'image', image: await loadImage(store, desc) };
  const index = await readJson<ImageIndex>(store, parseDigest(desc.digest), 4 << 20);
  const images: PlatformImage[] = [];
  for (const m of index.manifests) images.push({ platform: m.platform ?? { os: 'unknown', architecture: 'unknown' }, image: await loadImage(store, m) });
  return { kind: 'index', index: desc, images };
}

async function loadImage(store: ContentStore, desc: Descriptor): Promise<StoredImage> {
  const m = await readJson<{ config: Descriptor; layers: Descriptor[] }>(store, parseDigest(desc.digest), 4 << 20);
  const { platform: _platform, ...manifest } = desc;
  return { manifest, config: m.config, layers: m.layers };
}
