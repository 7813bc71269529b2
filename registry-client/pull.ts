import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { backoff } from '../core/backoff.js';
import type { BlobProvider, Ingester } from '../core/content.js';
import { digestHex, isDigest, sha256, type Digest } from '../core/digest.js';
import { bestPlatformMatch, describePlatform, NoMatchingPlatformError, platformRank } from '../core/platform.js';
import { isIndexMediaType, isManifestMediaType, MediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '../core/oci.js';
import { formatBytes } from '../core/bytes.js';
import { DigestMismatchError, HashingTap, LimitExceededError, readAllBounded, verifyDigest } from '../core/streams.js';
import { forEachLimit } from './concurrency.js';
import { InvalidDocumentError } from './errors.js';
import type { RecentDocuments, ServedDocument } from './recent-documents.js';
import { formatReference, manifestIdentifier, withDigest, type Reference } from './reference.js';
import { discard, getHeader, isRetryable, type Transport } from './transport.js';
import { repositoryScope } from './auth.js';

export interface PullLimits {
  readonly maxManifestBytes: number;
  readonly maxConfigBytes: number;
}

export interface PullContext {
  readonly transport: Transport;
  readonly limits: PullLimits;
  readonly concurrency: number;
  readonly retries: number;
  readonly maxRetryDelayMs: number;
  /** Called for every blob seen in a repository (feeds cross-repository mounts on push). */
  readonly sawBlob: (ref: Reference, digest: Digest) => void;
  /** Whether the reference's repository served (or was sent) this digest before, in this process or an earlier one. */
  readonly servedBefore: (ref: Reference, digest: Digest) => Promise<boolean>;
  /** Documents fetched moments ago: a pull reads them again instead of fetching them again. */
  readonly recent?: RecentDocuments;
}

/**
 * Where a resolution looks for documents it has seen before: manifests and
 * configs by digest, read and verified again. A store that can also ingest
 * keeps the indexes fetched, which nothing else stores (a pull keeps the
 * platform's manifest and config).
 */
export type KnownDocuments = BlobProvider & Partial<Ingester>;

export interface FetchedManifest {
  readonly digest: Digest;
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly parsed: ImageManifest | ImageIndex;
}

export interface ResolvedImage {
  /** The reference pinned to the platform manifest's digest (the tag kept for display). */
  readonly ref: Reference;
  readonly manifestDigest: Digest;
  readonly manifest: ImageManifest;
  readonly mediaType: string;
  /** The manifest exactly as served (its digest is `manifestDigest`). */
  readonly manifestBytes: Buffer;
  readonly config: ImageConfig;
  readonly configDigest: Digest;
  readonly configBytes: Buffer;
  /** The index the platform manifest was picked from, when the reference named one. */
  readonly index?: { readonly digest: Digest; readonly mediaType: string };
}

/** Progress of one blob: its digest, bytes done so far, and its size. */
export type ProgressFn = (id: string, done: number, total?: number) => void;

export interface PullOptions {
  readonly platform?: Platform;
  readonly onProgress?: ProgressFn;
  readonly signal?: AbortSignal;
  /**
   * Called once the image's manifest and config are known and verified,
   * before anything is stored or any layer fetched: a throw refuses the pull
   * (a caller's size limits, checked on the declared sizes that every blob is
   * then held to while it streams).
   */
  readonly admit?: (image: ResolvedImage) => void | Promise<void>;
}

const ACCEPT = [MediaType.OciIndex, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.DockerManifest].join(', ');

function mediaTypeOf(contentType: string | undefined): string | undefined {
  const mt = contentType?.split(';')[0]?.trim().toLowerCase();
  return mt || undefined;
}

/** Parse and check a manifest or index: known type, Content-Type agreeing with the body, schema 2. */
export function parseManifest(bytes: Buffer, contentType: string | undefined, what: string): { mediaType: string; parsed: ImageManifest | ImageIndex } {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new InvalidDocumentError(`${what}: manifest is not valid JSON`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidDocumentError(`${what}: manifest is not a JSON object`);
  const header = mediaTypeOf(contentType);
  const inBody = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  // Ambiguous documents are refused: both sources must agree when both exist.
  if (inBody && header && header !== inBody && header !== 'application/json' && header !== 'application/octet-stream') {
    throw new InvalidDocumentError(`${what}: Content-Type ${header} does not match the manifest's mediaType ${inBody}`);
  }
  const hasManifests = Array.isArray(doc.manifests);
  const hasConfig = doc.config !== undefined && Array.isArray(doc.layers);
  if (hasManifests && hasConfig) throw new InvalidDocumentError(`${what}: document is both an index and a manifest`);
  const mediaType = inBody ?? (header && header !== 'application/json' ? header : hasManifests ? MediaType.OciIndex : MediaType.OciManifest);
  if (doc.schemaVersion !== 2) throw new InvalidDocumentError(`${what}: unsupported schemaVersion ${String(doc.schemaVersion).slice(0, 20)} (schema 1 images are not supported)`);
  if (isIndexMediaType(mediaType)) {
    if (!hasManifests) throw new InvalidDocumentError(`${what}: index without manifests`);
  } else if (isManifestMediaType(mediaType)) {
    if (!hasConfig) throw new InvalidDocumentError(`${what}: manifest without config or layers`);
  } else {
    throw new InvalidDocumentError(`${what}: unsupported manifest media type ${mediaType.slice(0, 100)}`);
  }
  return { mediaType, parsed: doc as unknown as ImageManifest | ImageIndex };
}

/**
 * GET a manifest by the reference's digest (verified) or tag, or by a
 * descriptor (digest and size verified). With `reuse`, one this client
 * fetched by digest moments ago is read again instead (RecentDocuments).
 */
export async function fetchManifest(ctx: PullContext, ref: Reference, signal?: AbortSignal, desc?: Descriptor, reuse = false): Promise<FetchedManifest> {
  const id = desc?.digest ?? manifestIdentifier(ref);
  const what = `${formatReference({ registry: ref.registry, repository: ref.repository })}@${id}`;
  const recent = reuse && isDigest(id) ? ctx.recent?.get(ref, id) : undefined;
  const served = recent ?? (await getManifest(ctx, ref, id, what, desc, signal));
  const { bytes } = served;
  const digest = sha256(bytes);
  // Never trust Docker-Content-Digest: the bytes name themselves.
  const want = desc?.digest ?? ref.digest;
  if (want && digest !== want) throw new DigestMismatchError({ digest: want }, { digest, size: bytes.length }, 'manifest');
  if (desc && bytes.length !== desc.size) throw new DigestMismatchError({ digest: desc.digest, size: desc.size }, { digest, size: bytes.length }, 'manifest');
  const { mediaType, parsed } = parseManifest(bytes, served.contentType, what);
  if (desc && desc.mediaType && desc.mediaType !== mediaType) {
    throw new InvalidDocumentError(`${what}: descriptor says ${desc.mediaType} but the manifest is ${mediaType}`);
  }
  ctx.sawBlob(ref, digest);
  // Kept from when it was fetched, not from its last use: a minute after a registry said so, ask it again.
  if (!recent) ctx.recent?.put(ref, digest, served);
  return { digest, mediaType, bytes, parsed };
}

/** The manifest `id` names, as the registry sends it (bounded; checked by the caller). */
async function getManifest(ctx: PullContext, ref: Reference, id: string, what: string, desc: Descriptor | undefined, signal?: AbortSignal): Promise<ServedDocument> {
  const res = await ctx.transport.request({
    registry: ref.registry,
    method: 'GET',
    path: `/v2/${ref.repository}/manifests/${id}`,
    headers: { accept: ACCEPT },
    scopes: [repositoryScope(ref.repository, 'pull')],
    action: `fetch manifest ${what}`,
    signal,
  });
  const limit = desc ? Math.min(desc.size, ctx.limits.maxManifestBytes) : ctx.limits.maxManifestBytes;
  const announced = Number(getHeader(res.headers, 'content-length') ?? NaN);
  if (announced > ctx.limits.maxManifestBytes) {
    await discard(res.body);
    throw new LimitExceededError(`manifest ${what} is ${formatBytes(announced)}: over the ${formatBytes(ctx.limits.maxManifestBytes)} limit on manifests (refused before reading it)`);
  }
  let bytes: Buffer;
  try {
    bytes = await readAllBounded(res.body, limit, `manifest ${what}`);
  } catch (err) {
    await discard(res.body);
    if (desc && desc.size <= ctx.limits.maxManifestBytes) throw new DigestMismatchError({ digest: desc.digest, size: desc.size }, { size: desc.size + 1 }, 'manifest');
    throw err;
  }
  return { bytes, contentType: getHeader(res.headers, 'content-type') };
}

/** GET a blob by digest; the stream fails at its end when digest or size do not match. */
export async function fetchBlob(ctx: PullContext, ref: Reference, desc: Descriptor, signal?: AbortSignal): Promise<Readable> {
  const res = await ctx.transport.request({
    registry: ref.registry,
    method: 'GET',
    path: `/v2/${ref.repository}/blobs/${desc.digest}`,
    scopes: [repositoryScope(ref.repository, 'pull')],
    action: `fetch blob ${desc.digest}`,
    signal,
  });
  const verify = verifyDigest({ digest: desc.digest, size: desc.size }, `blob ${desc.digest}`);
  // pipeline forwards a body error (reset mid-body) into `verify`, which the caller reads.
  pipeline(res.body, verify).catch(() => undefined);
  return verify;
}

async function fetchConfig(ctx: PullContext, ref: Reference, desc: Descriptor, signal?: AbortSignal, reuse = false): Promise<Buffer> {
  if (desc.size > ctx.limits.maxConfigBytes) throw new LimitExceededError(`image config ${desc.digest} is ${formatBytes(desc.size)}: over the ${formatBytes(ctx.limits.maxConfigBytes)} limit on image configs (refused before reading it)`);
  const recent = reuse ? ctx.recent?.get(ref, desc.digest) : undefined;
  if (recent && recent.bytes.length === desc.size) return recent.bytes;
  for (let attempt = 0; ; attempt++) {
    try {
      const stream = await fetchBlob(ctx, ref, desc, signal);
      const bytes = await readAllBounded(stream, ctx.limits.maxConfigBytes, `image config ${desc.digest}`);
      ctx.recent?.put(ref, desc.digest, { bytes });
      return bytes;
    } catch (err) {
      if (signal?.aborted || attempt >= ctx.retries || !isRetryable(err)) throw err;
      await backoff(attempt, ctx.maxRetryDelayMs, signal);
    }
  }
}

/** The config from a local store when it holds it (verified again: it is small), else undefined. */
async function localConfig(local: BlobProvider | undefined, desc: Descriptor, limit: number): Promise<Buffer | undefined> {
  return local && desc.size <= limit ? storedBytes(local, desc.digest, limit, desc.size) : undefined;
}

/**
 * A small document from a local store by digest (a config, a manifest): its
 * bytes when they are there, within `limit` (and `size`, when given), and
 * hash to the digest; undefined otherwise, and on any failure to read them.
 */
async function storedBytes(local: BlobProvider, digest: Digest, limit: number, size?: number): Promise<Buffer | undefined> {
  try {
    const have = await local.stat(digest);
    if (!have || have.size > limit || (size !== undefined && have.size !== size)) return undefined;
    const bytes = await readAllBounded(await local.open(digest), limit, `document ${digest}`);
    return sha256(bytes) === digest ? bytes : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Tag or digest → platform manifest → config, every document verified. With
 * `local`, a known image costs one HEAD and no GET (knownManifest): a
 * document is named by its digest, so one already in `local` is not fetched
 * again, and Docker Hub counts manifest GETs, not HEADs, against its pull
 * limits. `reuse` is for a pull that follows a resolution: what that one
 * fetched by digest moments ago is not fetched again.
 */
export async function resolve(ctx: PullContext, ref: Reference, platform: Platform, signal?: AbortSignal, local?: KnownDocuments, reuse = false): Promise<ResolvedImage> {
  const known = local ? await knownManifest(ctx, ref, local, signal) : undefined;
  let top = known ?? (await fetchManifest(ctx, ref, signal, undefined, reuse));
  let index: ResolvedImage['index'];
  if (isIndexMediaType(top.mediaType)) {
    if (!known && local?.ingest) await keepDocument(local as KnownDocuments & Ingester, top);
    const list = (top.parsed as ImageIndex).manifests;
    // Attestation manifests (platform unknown/unknown) and nested indexes are not images to build on.
    const pick = bestPlatformMatch(platform, list.filter((d) => isManifestMediaType(d.mediaType)));
    if (!pick) throw new NoMatchingPlatformError(formatReference(ref), platform, [...new Set(list.filter((d) => isManifestMediaType(d.mediaType) && d.platform?.os !== 'unknown').map((d) => describePlatform(d.platform)))]);
    index = { digest: top.digest, mediaType: top.mediaType };
    top = (local && (await storedManifest(ctx, ref, local, pick))) || (await fetchManifest(ctx, ref, signal, pick, reuse));
    if (!isManifestMediaType(top.mediaType)) throw new InvalidDocumentError(`${formatReference(ref)}: nested indexes are not supported`);
  }
  const manifest = top.parsed as ImageManifest;
  const configBytes = (await localConfig(local, manifest.config, ctx.limits.maxConfigBytes)) ?? (await fetchConfig(ctx, ref, manifest.config, signal, reuse));
  let config: ImageConfig;
  try {
    config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
  } catch {
    throw new InvalidDocumentError(`image config ${manifest.config.digest} is not valid JSON`);
  }
  if (!config || typeof config !== 'object' || !config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
    throw new InvalidDocumentError(`image config ${manifest.config.digest} has no rootfs.diff_ids`);
  }
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new InvalidDocumentError(`image ${top.digest}: ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff ids`);
  }
  // A single-platform image serves only its own platform: an amd64 base under an arm64 build would be a wrong image, not a slow one.
  // A config that names no platform is taken as it is.
  if (!index && config.os && config.architecture && platformRank(platform, { os: config.os ?? '', architecture: config.architecture ?? '', ...(config.variant ? { variant: config.variant } : {}) }) === undefined) {
    throw new NoMatchingPlatformError(formatReference(ref), platform, [describePlatform(config)]);
  }
  return {
    ref: withDigest(ref, top.digest),
    manifestDigest: top.digest,
    manifest,
    mediaType: top.mediaType,
    manifestBytes: top.bytes,
    config,
    configDigest: manifest.config.digest,
    configBytes,
    ...(index ? { index } : {}),
  };
}

/**
 * The manifest (or index) `ref` names, when this store holds bytes its
 * repository served before; undefined sends the caller to a GET.
 *
 * One HEAD either way, as containerd and BuildKit resolve: for a tag it
 * says which digest the tag names now; for a digest the bytes are looked up
 * first and the HEAD only asks whether the repository still grants them (the
 * credentials of this build, not of the one that pulled them). The HEAD's
 * digest is a name, never a proof: the bytes must hash to it, and only bytes
 * the same repository served to this store are used, so no registry can make
 * a build use another registry's content by naming its digest
 * (docs/security.md T8). Any other answer, or a failure, is left to the GET,
 * which reports it with its retries.
 */
async function knownManifest(ctx: PullContext, ref: Reference, local: KnownDocuments, signal?: AbortSignal): Promise<FetchedManifest | undefined> {
  const byDigest = ref.digest ? await storedManifest(ctx, ref, local, { digest: ref.digest }) : undefined;
  if (ref.digest && !byDigest) return undefined;
  const id = manifestIdentifier(ref);
  let res;
  try {
    res = await ctx.transport.request({
      registry: ref.registry,
      method: 'HEAD',
      path: `/v2/${ref.repository}/manifests/${id}`,
      headers: { accept: ACCEPT },
      scopes: [repositoryScope(ref.repository, 'pull')],
      accept: [404],
      retry: false,
      action: `check manifest ${formatReference({ registry: ref.registry, repository: ref.repository })}@${id}`,
      signal,
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    return undefined;
  }
  await discard(res.body);
  if (res.status !== 200) return undefined;
  const named = getHeader(res.headers, 'docker-content-digest')?.trim();
  const size = Number(getHeader(res.headers, 'content-length'));
  if (byDigest) return named === undefined || named === byDigest.digest ? byDigest : undefined;
  if (!isDigest(named)) return undefined;
  return storedManifest(ctx, ref, local, {
    digest: named,
    ...(Number.isSafeInteger(size) && size > 0 ? { size } : {}),
    contentType: getHeader(res.headers, 'content-type'),
  });
}

/**
 * A manifest from `local` by digest, when `ref`'s repository served it
 * before and its bytes check out (digest, size, and media type as `want`
 * says); undefined otherwise, and on any failure to read it.
 */
async function storedManifest(
  ctx: PullContext,
  ref: Reference,
  local: BlobProvider,
  want: { readonly digest: Digest; readonly size?: number; readonly mediaType?: string; readonly contentType?: string | undefined },
): Promise<FetchedManifest | undefined> {
  try {
    const [served, bytes] = await Promise.all([ctx.servedBefore(ref, want.digest), storedBytes(local, want.digest, ctx.limits.maxManifestBytes, want.size)]);
    if (!served || !bytes) return undefined;
    const { mediaType, parsed } = parseManifest(bytes, want.contentType, `${formatReference({ registry: ref.registry, repository: ref.repository })}@${want.digest}`);
    if (want.mediaType && want.mediaType !== mediaType) return undefined;
    return { digest: want.digest, mediaType, bytes, parsed };
  } catch {
    return undefined;
  }
}

/** Keep a fetched index for the next resolution; a store that cannot take it only costs that one a GET. */
async function keepDocument(store: Ingester & BlobProvider, doc: FetchedManifest): Promise<void> {
  await ingestBytes(store, doc.digest, doc.bytes).catch(() => undefined);
}

async function ingestBytes(store: Ingester & BlobProvider, digest: Digest, bytes: Buffer): Promise<void> {
  const have = await store.stat(digest);
  if (have && have.size === bytes.length) return;
  const w = await store.ingest(ingestRef(digest), { digest, size: bytes.length });
  try {
    await pipeline(async function* () {
      yield bytes;
    }, w);
    await w.commit();
  } catch (err) {
    await w.abort();
    throw err;
  }
}

function ingestRef(digest: Digest): string {
  // Unique per attempt: two pulls of one blob must not share an ingest.
  return `pull-${digestHex(digest).slice(0, 24)}-${randomBytes(4).toString('hex')}`;
}

/** Stream one blob into the store, verified in flight; retries transient failures from the start. */
async function pullBlob(ctx: PullContext, ref: Reference, store: Ingester & BlobProvider, desc: Descriptor, opts: PullOptions, signal: AbortSignal): Promise<void> {
  const have = await store.stat(desc.digest);
  if (have && have.size === desc.size) {
    opts.onProgress?.(desc.digest, desc.size, desc.size);
    return;
  }
  for (let attempt = 0; ; attempt++) {
    const w = await store.ingest(ingestRef(desc.digest), { digest: desc.digest, size: desc.size });
    try {
      const body = await fetchBlob(ctx, ref, desc, signal);
      const tap = opts.onProgress ? new HashingTap((done) => opts.onProgress!(desc.digest, done, desc.size)) : new PassThrough();
      await pipeline(body, tap, w, { signal });
      await w.commit();
      return;
    } catch (err) {
      await w.abort();
      if (signal.aborted || attempt >= ctx.retries || !isRetryable(err)) throw err;
      await backoff(attempt, ctx.maxRetryDelayMs, signal);
    }
  }
}

/** Resolve, then fetch config, manifest and every missing layer into the store (bounded concurrency). */
export async function pullImage(ctx: PullContext, ref: Reference, store: Ingester & BlobProvider, opts: PullOptions & { platform: Platform }): Promise<ResolvedImage> {
  // A pull follows the build's own resolution of the image: what that fetched is not fetched again.
  const resolved = await resolve(ctx, ref, opts.platform, opts.signal, store, true);
  await opts.admit?.(resolved);
  await ingestBytes(store, resolved.configDigest, resolved.configBytes);
  await forEachLimit(resolved.manifest.layers, ctx.concurrency, opts.signal, async (layer, signal) => {
    await pullBlob(ctx, ref, store, layer, opts, signal);
    ctx.sawBlob(ref, layer.digest);
  });
  // The manifest goes in last: its presence then means the whole image is local.
  await ingestBytes(store, resolved.manifestDigest, resolved.manifestBytes);
  return resolved;
}
