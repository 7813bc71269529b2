import { mkdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BlobInfo, BlobProvider } from '../core/content.js';
import { canonicalJson, isDigest, sha256, type Digest } from '../core/digest.js';
import { BuildliteError, type ErrorCode } from '../core/errors.js';
import { MediaType, type Descriptor, type ImageManifest } from '../core/oci.js';
import { readAllBounded } from '../core/streams.js';
import type { RegistryClient } from '../registry-client/index.js';
import { copyBlob, readJson } from './blob-helpers.js';
import { atomicWriteFile, isErrno } from '../core/fs-util.js';
import type { LayerRef } from './key-index.js';
import type { RemoteBlob } from './lazy-store.js';
import { LocalContentStore } from './local-store.js';

/**
 * Cache export/import (`--cache-to`, `--cache-from`), in a registry or in an
 * OCI layout directory. The cache is one OCI image manifest (an artifact):
 *
 *   config  application/vnd.buildlite.cache.index.v1+json
 *           {"version":1,"records":[{"key":"sha256:..","layers":[LayerRef...]}]}
 *   layers  every layer blob the records name, with their own media types
 *
 * Trust: an import is digest-verified (manifest, index, every blob as it is
 * fetched, each layer's diff id when it is applied), but a record's KEY is
 * taken on faith: nothing can check that running the step would produce the
 * layers the record names. Whoever can write the cache ref can therefore put
 * any content into any build that imports it. Import only caches written by
 * builds you trust (your CI's own ref), as with BuildKit.
 */
export const CACHE_INDEX_MEDIA_TYPE = 'application/vnd.buildlite.cache.index.v1+json';
export const CACHE_ARTIFACT_TYPE = 'application/vnd.buildlite.cache.v1';

export interface CacheIndexRecord {
  readonly key: Digest;
  readonly layers: readonly LayerRef[];
  /** When the step's result was made (ms); an image assembled from it keeps this time, hence its digest. */
  readonly createdAt?: number;
}

export type CacheLocation = { readonly type: 'registry'; readonly ref: string } | { readonly type: 'local'; readonly dir: string };

export interface ImportedCache {
  readonly records: ReadonlyMap<Digest, { readonly layers: readonly LayerRef[]; readonly createdAt?: number }>;
  /** Every layer blob the cache holds, fetchable on demand (register them with a LazyBlobStore). */
  readonly blobs: ReadonlyMap<Digest, RemoteBlob>;
  /** For a registry cache: the repository, so a push to the same registry can mount instead of upload. */
  readonly registry?: { readonly host: string; readonly repository: string };
}

const DEFAULTS = {
  /** A cache manifest with 10k layers is ~2 MiB. */
  maxManifestBytes: 4 << 20,
  /** 100k records of a few layers each. */
  maxIndexBytes: 64 << 20,
  /** Name of the cache in a local layout's index.json. */
  localRefName: 'buildlite-cache',
} as const;

export class CacheTransferError extends BuildliteError {
  readonly code: ErrorCode;
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.code = (cause as { code?: ErrorCode } | undefined)?.code === 'PERMISSION_DENIED' ? 'PERMISSION_DENIED' : cause instanceof BuildliteError ? cause.code : 'REGISTRY';
  }
}

/** The records of a cache, validated: keys and digests well-formed, every layer present in the manifest. */
export function parseCacheIndex(bytes: Buffer, manifest: ImageManifest, what: string): Map<Digest, { layers: LayerRef[]; createdAt?: number }> {
  let doc: { version?: unknown; records?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch (err) {
    throw new CacheTransferError(`${what}: the cache index is not JSON`, err);
  }
  if (doc?.version !== 1 || !Array.isArray(doc.records)) throw new CacheTransferError(`${what}: not a buildlite cache index (version 1)`, undefined);
  const inManifest = new Map(manifest.layers.map((l) => [l.digest, l.size]));
  const out = new Map<Digest, { layers: LayerRef[]; createdAt?: number }>();
  for (const r of doc.records as Array<{ key?: unknown; layers?: unknown; createdAt?: unknown }>) {
    if (!r || !isDigest(r.key) || !Array.isArray(r.layers)) continue;
    const layers: LayerRef[] = [];
    let ok = true;
    for (const l of r.layers as Array<Record<string, unknown>>) {
      const { mediaType, digest, size, diffId } = l ?? {};
      // A layer the manifest does not carry cannot be fetched from this cache: drop the record.
      if (typeof mediaType !== 'string' || !isDigest(digest) || !isDigest(diffId) || typeof size !== 'number' || inManifest.get(digest) !== size) {
        ok = false;
        break;
      }
      layers.push({ mediaType, digest, size, diffId });
    }
    if (ok) out.set(r.key, { layers, ...(typeof r.createdAt === 'number' && Number.isFinite(r.createdAt) ? { createdAt: r.createdAt } : {}) });
  }
  return out;
}

export async function importCache(loc: CacheLocation, client: RegistryClient, signal?: AbortSignal): Promise<ImportedCache> {
  return loc.type === 'registry' ? importRegistry(loc.ref, client, signal) : importLocal(loc.dir);
}

/** Loaded on first use: most users of cache/ never need the registry client. */
const registryClient = () => import('../registry-client/index.js');

async function importRegistry(refText: string, client: RegistryClient, signal?: AbortSignal): Promise<ImportedCache> {
  const what = `cache ${refText}`;
  try {
    const ref = (await registryClient()).parseReference(refText);
    const m = await client.fetchManifest(ref, signal);
    if (m.bytes.length > DEFAULTS.maxManifestBytes) throw new CacheTransferError(`${what}: manifest larger than ${DEFAULTS.maxManifestBytes} bytes`, undefined);
    const manifest = asCacheManifest(m.parsed, what);
    const stream = await client.fetchBlob(ref, manifest.config, signal);
    const bytes = await readAllBounded(stream, DEFAULTS.maxIndexBytes, `${what} index`);
    const records = parseCacheIndex(bytes, manifest, what);
    const blobs = new Map<Digest, RemoteBlob>();
    for (const l of manifest.layers) blobs.set(l.digest, { size: l.size, fetch: (s) => client.fetchBlob(ref, l, s) });
    return { records, blobs, registry: { host: ref.registry, repository: ref.repository } };
  } catch (err) {
    if (err instanceof CacheTransferError) throw err;
    throw new CacheTransferError(`import ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

async function importLocal(dir: string): Promise<ImportedCache> {
  const what = `cache dir ${dir}`;
  const store = new LocalContentStore(dir);
  try {
    const desc = await localCacheDescriptor(dir, what);
    const manifest = asCacheManifest(await readJson<ImageManifest>(store, desc.digest, DEFAULTS.maxManifestBytes), what);
    const index = await readAllBounded(await store.open(manifest.config.digest), DEFAULTS.maxIndexBytes, `${what} index`);
    if (sha256(index) !== manifest.config.digest) throw new CacheTransferError(`${what}: the cache index does not match its digest`, undefined);
    const records = parseCacheIndex(index, manifest, what);
    const blobs = new Map<Digest, RemoteBlob>();
    for (const l of manifest.layers) {
      const digest = l.digest;
      // The layout's own store verifies nothing on open; the lazy store verifies digest and size as it copies.
      blobs.set(digest, { size: l.size, fetch: (s) => store.open(digest, s) });
    }
    return { records, blobs };
  } catch (err) {
    if (err instanceof CacheTransferError) throw err;
    throw new CacheTransferError(`import ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

async function localCacheDescriptor(dir: string, what: string): Promise<Descriptor> {
  const text = await readFile(join(dir, 'index.json'), 'utf8').catch((err: unknown) => {
    throw new CacheTransferError(`${what}: no OCI layout here (${isErrno(err, 'ENOENT') ? 'index.json is missing' : String(err)})`, err);
  });
  if (text.length > DEFAULTS.maxManifestBytes) throw new CacheTransferError(`${what}: index.json is too large`, undefined);
  const idx = JSON.parse(text) as { manifests?: Descriptor[] };
  const desc = (idx.manifests ?? []).find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === DEFAULTS.localRefName && isDigest(d.digest));
  if (!desc) throw new CacheTransferError(`${what}: index.json names no ${DEFAULTS.localRefName} manifest`, undefined);
  return desc;
}

function asCacheManifest(parsed: unknown, what: string): ImageManifest {
  const m = parsed as Partial<ImageManifest>;
  if (!m || !m.config || !Array.isArray(m.layers) || m.config.mediaType !== CACHE_INDEX_MEDIA_TYPE || !isDigest(m.config.digest)) {
    throw new CacheTransferError(`${what}: not a buildlite cache (config media type is not ${CACHE_INDEX_MEDIA_TYPE})`, undefined);
  }
  if (m.config.size > DEFAULTS.maxIndexBytes) throw new CacheTransferError(`${what}: cache index larger than ${DEFAULTS.maxIndexBytes} bytes`, undefined);
  return m as ImageManifest;
}

/** The cache manifest and its index blob for `records` (blobs in first-use order, deduplicated). */
export function buildCacheManifest(records: readonly CacheIndexRecord[]): { manifest: Buffer; index: Buffer; indexDesc: Descriptor; layers: Descriptor[] } {
  const sorted = [...records].sort((a, b) => a.key.localeCompare(b.key));
  const index = Buffer.from(canonicalJson({ version: 1, records: sorted.map((r) => ({ key: r.key, ...(r.createdAt !== undefined ? { createdAt: r.createdAt } : {}), layers: r.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, diffId: l.diffId })) })) }));
  const indexDesc: Descriptor = { mediaType: CACHE_INDEX_MEDIA_TYPE, digest: sha256(index), size: index.length };
  const layers = new Map<string, Descriptor>();
  for (const r of sorted) for (const l of r.layers) if (!layers.has(l.digest)) layers.set(l.digest, { mediaType: l.mediaType, digest: l.digest, size: l.size });
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: CACHE_ARTIFACT_TYPE, config: indexDesc, layers: [...layers.values()] }),
  );
  return { manifest, index, indexDesc, layers: [...layers.values()] };
}

/**
 * Writes the cache. `provider` serves the layer blobs (a LazyBlobStore fetches
 * what it only knows remotely). A registry that refuses anything is reported
 * with its own reason; the caller decides whether that fails the build.
 */
export async function exportCache(
  loc: CacheLocation,
  records: readonly CacheIndexRecord[],
  provider: BlobProvider,
  client: RegistryClient,
  opts: { signal?: AbortSignal; mountFrom?: readonly string[] } = {},
): Promise<{ digest: Digest; layers: number }> {
  const built = buildCacheManifest(records);
  const withIndex: BlobProvider = {
    open: async (d, s) => (d === built.indexDesc.digest ? Readable.from([built.index]) : provider.open(d, s)),
    stat: async (d): Promise<BlobInfo | undefined> => (d === built.indexDesc.digest ? { digest: d, size: built.index.length } : provider.stat(d)),
  };
  const what = loc.type === 'registry' ? `cache ${loc.ref}` : `cache dir ${loc.dir}`;
  try {
    const digest =
      loc.type === 'registry'
        ? await client.pushImage((await registryClient()).parseReference(loc.ref), { manifest: built.manifest, mediaType: MediaType.OciManifest, blobs: [built.indexDesc, ...built.layers] }, withIndex, {
            ...(opts.signal ? { signal: opts.signal } : {}),
            ...(opts.mountFrom ? { mountFrom: opts.mountFrom } : {}),
          })
        : await exportLocal(loc.dir, built, withIndex, opts.signal);
    return { digest, layers: built.layers.length };
  } catch (err) {
    throw new CacheTransferError(`export ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

async function exportLocal(dir: string, built: ReturnType<typeof buildCacheManifest>, provider: BlobProvider, signal?: AbortSignal): Promise<Digest> {
  await mkdir(dir, { recursive: true });
  const store = new LocalContentStore(dir);
  for (const d of [built.indexDesc, ...built.layers]) await copyBlob(provider, store, d.digest, signal);
  const manifestDigest = sha256(built.manifest);
  await copyBlob({ open: async () => Readable.from([built.manifest]), stat: async (d) => ({ digest: d, size: built.manifest.length }) }, store, manifestDigest, signal);
  // The store's ingest dir is not part of an OCI layout; it is empty after the copies.
  await rmdir(join(dir, 'ingest')).catch(() => undefined);
  let manifests: Descriptor[] = [];
  try {
    const old = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: Descriptor[] };
    manifests = (old.manifests ?? []).filter((d) => d.annotations?.['org.opencontainers.image.ref.name'] !== DEFAULTS.localRefName);
  } catch {
    // No usable index yet: start one.
  }
  manifests.push({
    mediaType: MediaType.OciManifest,
    digest: manifestDigest,
    size: built.manifest.length,
    annotations: { 'org.opencontainers.image.ref.name': DEFAULTS.localRefName },
  });
  await atomicWriteFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }), 0o644);
  await atomicWriteFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }), 0o644);
  return manifestDigest;
}
