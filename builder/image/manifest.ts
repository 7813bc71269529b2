import type { ContentStore } from '../../core/content.js';
import type { Digest } from '../../core/digest.js';
import { MediaType, type Descriptor, type ImageConfig, type ImageManifest } from '../../core/oci.js';
import type { LayerRef } from '../../cache/index.js';
import { writeBlob } from '../../cache/index.js';

/** A finished image in the content store: its manifest bytes are what gets pushed, byte for byte. */
export interface StoredImage {
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

/** Serialise config and manifest (stable JSON, OCI media types) into the store. */
export async function storeImage(store: ContentStore, config: ImageConfig, layers: readonly LayerRef[]): Promise<StoredImage> {
  const configBytes = Buffer.from(JSON.stringify(config));
  const cfg = await writeBlob(store, configBytes);
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: cfg.digest, size: cfg.size };
  const layerDescs: Descriptor[] = layers.map((l) => ({ mediaType: ociLayerType(l.mediaType), digest: l.digest, size: l.size }));
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: layerDescs };
  const m = await writeBlob(store, Buffer.from(JSON.stringify(manifest)));
  return { manifest: { mediaType: MediaType.OciManifest, digest: m.digest, size: m.size }, config: configDesc, layers: layerDescs };
}

/** Base layers pulled as Docker media types keep their bytes; only the label changes to OCI's equivalent. */
function ociLayerType(mt: string): string {
  if (mt === MediaType.DockerLayerGzip) return MediaType.OciLayerGzip;
  return mt;
}

export type { Digest };
