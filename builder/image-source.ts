import type { ContentStore } from '../core/content.js';
import { parseDigest } from '../core/digest.js';
import { platformString, type Descriptor, type ImageConfig, type Platform } from '../core/oci.js';
import { normalizePlatform } from '../core/platform.js';
import { readJson, type LayerRef } from '../cache/index.js';
import { formatReference, parseReference, type KnownDocuments, type RegistryClient, type ResolvedImage as PulledImage } from '../registry-client/index.js';
import type { ImageResolver, ResolvedImage } from './graph/index.js';
import type { ImageFetcher } from './solver/index.js';

/** Max size of an image config we accept (BuildKit and containerd use a few MiB too). */
const MAX_CONFIG_BYTES = 8 << 20;

/**
 * FROM through the registry client: resolving pins a tag to a manifest digest
 * (so a re-tag invalidates everything after FROM), pulling fetches blobs into
 * the store. Resolutions are memoised per build so a tag is read once.
 */
export class RegistryImages implements ImageResolver, ImageFetcher {
  private readonly resolved = new Map<string, Promise<ResolvedImage>>();

  /** `local`: the store pulls fill, so resolving a known base is one HEAD (RegistryClient.resolve). */
  constructor(
    private readonly client: RegistryClient,
    private readonly local?: KnownDocuments,
  ) {}

  resolve(ref: string, platform: Platform, signal?: AbortSignal): Promise<ResolvedImage> {
    const k = `${ref}|${platformString(normalizePlatform(platform))}`;
    let p = this.resolved.get(k);
    if (!p) {
      p = this.doResolve(ref, platform, signal);
      this.resolved.set(k, p);
    }
    return p;
  }

  private async doResolve(ref: string, platform: Platform, signal?: AbortSignal): Promise<ResolvedImage> {
    const parsed = parseReference(ref);
    const r = await this.client.resolve(parsed, platform, signal, this.local);
    const pinned = formatReference({ ...parsed, tag: undefined, digest: r.manifestDigest });
    return {
      ref: pinned,
      config: r.config.config ?? {},
      history: r.config.history ?? [],
      // The platform asked for, not the config's words for it: a stage's platform is its target (arm/v7 on an arm/v6 base stays v7, as BuildKit).
      platform: normalizePlatform(platform),
    };
  }

  async pull(
    ref: string,
    platform: Platform,
    store: ContentStore,
    opts: Parameters<ImageFetcher['pull']>[3],
  ): Promise<{ config: ImageConfig; layers: LayerRef[] }> {
    const { admit, ...pullOpts } = opts;
    const pulled = await this.client.pullImage(parseReference(ref), store, {
      platform,
      ...pullOpts,
      ...(admit
        ? {
            admit: async (img: PulledImage) => {
              const layers = layerRefs(ref, img.manifest.layers, img.config.rootfs.diff_ids);
              const missing: LayerRef[] = [];
              for (const l of layers) if ((await store.stat(l.digest))?.size !== l.size) missing.push(l);
              admit(layers, missing);
            },
          }
        : {}),
    });
    const config = await readJson<ImageConfig>(store, pulled.configDigest, MAX_CONFIG_BYTES);
    return { config, layers: layerRefs(ref, pulled.manifest.layers, config.rootfs.diff_ids) };
  }
}

/** A manifest's layers with their diff ids from the config, which must name one per layer. */
export function layerRefs(ref: string, layers: readonly Descriptor[], diffIds: readonly string[]): LayerRef[] {
  if (diffIds.length !== layers.length) throw new Error(`image ${ref}: ${layers.length} layers but ${diffIds.length} diff_ids in its config`);
  return layers.map((l, i) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, diffId: parseDigest(diffIds[i]!) }));
}

/**
 * For planning without a network (`buildlite graph`): refs stay as written and
 * base images contribute no config, so ONBUILD triggers of a base are not shown.
 */
export const offlineResolver: ImageResolver = {
  async resolve(ref: string, platform: Platform): Promise<ResolvedImage> {
    return { ref, config: {}, history: [], platform };
  },
};
