import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { ContentStore } from '../core/content.js';
import { isDigest, parseDigest, type Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { isIndexMediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '../core/oci.js';
import { bestPlatformMatch, describePlatform, NoMatchingPlatformError } from '../core/platform.js';
import { resolveInRoot } from '../core/safe-path.js';
import { readAllBounded } from '../core/streams.js';
import { readJson, writeBlob } from '../cache/index.js';
import type { ImageResolver, ResolvedImage } from './graph/index.js';
import { layerRefs } from './image-source.js';
import type { ImageFetcher } from './solver/index.js';

/** How an image of an OCI layout is referred to in the graph: by manifest digest only, so no host path or context name is in a key. */
const SCHEME = 'oci-layout://';
/** Manifests, indexes and configs are small documents; the same bound as for pulls. */
const MAX_DOCUMENT = 4 << 20;
/** The annotation naming an image in a layout's index.json (what `PATH:TAG` selects). */
const REF_NAME = 'org.opencontainers.image.ref.name';

export function isLayoutRef(ref: string): boolean {
  return ref.startsWith(SCHEME);
}

/**
 * `--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]`: the image is copied
 * from the layout into the content store (every blob verified against its
 * digest, every path resolved inside the layout, so a symlink in it cannot
 * read a file of this machine) and named `oci-layout://<manifest digest>`,
 * which this module's resolver and fetcher answer from the store.
 */
export async function importOciLayout(
  store: ContentStore,
  dir: string,
  pick: { readonly tag?: string; readonly digest?: Digest },
  platform: Platform,
  what: string,
): Promise<ResolvedImage> {
  const index = JSON.parse((await readLayoutFile(dir, 'index.json', what, MAX_DOCUMENT)).toString('utf8')) as ImageIndex;
  const list = index.manifests ?? [];
  let desc: Descriptor | undefined;
  if (pick.digest !== undefined) desc = list.find((d) => d.digest === pick.digest);
  else if (pick.tag !== undefined) desc = list.find((d) => d.annotations?.[REF_NAME] === pick.tag);
  else if (list.length === 1) desc = list[0];
  else throw new CodedError('INVALID_ARGUMENT', `${what}: the layout holds ${list.length} images: name one with :TAG or @DIGEST`);
  if (!desc) throw new CodedError('NOT_FOUND', `${what}: the layout has no image ${pick.digest ?? pick.tag ?? ''}`);
  await importBlob(store, dir, desc, what);
  if (isIndexMediaType(desc.mediaType)) {
    const inner = await readJson<ImageIndex>(store, parseDigest(desc.digest), MAX_DOCUMENT);
    const m = bestPlatformMatch(platform, inner.manifests ?? []);
    if (!m) throw new NoMatchingPlatformError(what, platform, (inner.manifests ?? []).map((d) => describePlatform(d.platform)));
    desc = m;
    await importBlob(store, dir, desc, what);
  }
  const manifest = await readJson<ImageManifest>(store, parseDigest(desc.digest), MAX_DOCUMENT);
  for (const d of [manifest.config, ...manifest.layers]) await importBlob(store, dir, d, what);
  const config = await readJson<ImageConfig>(store, parseDigest(manifest.config.digest), MAX_DOCUMENT);
  return {
    ref: `${SCHEME}${desc.digest}`,
    config: config.config ?? {},
    history: config.history ?? [],
    platform: { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) },
  };
}

async function importBlob(store: ContentStore, dir: string, desc: Descriptor, what: string): Promise<void> {
  if (!isDigest(desc.digest)) throw new CodedError('INVALID_ARGUMENT', `${what}: a descriptor has a malformed digest`);
  const present = await store.stat(desc.digest);
  if (present && present.size === desc.size) return;
  const file = await layoutPath(dir, `blobs/sha256/${desc.digest.slice('sha256:'.length)}`, what);
  // The ingest checks digest and size before the blob becomes visible.
  await writeBlob(store, createReadStream(file), { digest: desc.digest, size: desc.size });
}

/** A regular file of the layout, its path resolved as if the layout were `/`. */
async function layoutPath(dir: string, rel: string, what: string): Promise<string> {
  const file = await resolveInRoot(dir, rel);
  const st = await lstat(file).catch(() => undefined);
  if (!st?.isFile()) throw new CodedError('NOT_FOUND', `${what}: the layout has no ${rel} (is it an OCI image layout?)`);
  return file;
}

async function readLayoutFile(dir: string, rel: string, what: string, max: number): Promise<Buffer> {
  return readAllBounded(createReadStream(await layoutPath(dir, rel, what)), max, `${what}: ${rel}`);
}

/** Answers `oci-layout://` refs of imported layouts from the store, everything else through `base`. */
export function withLayouts(base: ImageResolver, imported: ReadonlyMap<string, ResolvedImage>): ImageResolver {
  return { resolve: (ref, platform, signal) => imported.get(ref) ?? base.resolve(ref, platform, signal) } as ImageResolver;
}

/** Pulls of `oci-layout://` refs read the imported manifest from the store; others go to `base`. */
export function layoutFetcher(base: ImageFetcher): ImageFetcher {
  return {
    async pull(ref, platform, store, opts) {
      if (!isLayoutRef(ref)) return base.pull(ref, platform, store, opts);
      const manifest = await readJson<ImageManifest>(store, parseDigest(ref.slice(SCHEME.length)), MAX_DOCUMENT);
      const config = await readJson<ImageConfig>(store, parseDigest(manifest.config.digest), MAX_DOCUMENT);
      return { config, layers: layerRefs(ref, manifest.layers, config.rootfs.diff_ids) };
    },
  };
}

