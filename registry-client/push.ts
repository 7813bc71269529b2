import { Transform, type Readable } from 'node:stream';
import type { BlobProvider } from '../core/content.js';
import { sha256, type Digest } from '../core/digest.js';
import { backoff } from '../core/backoff.js';
import { CodedError } from '../core/errors.js';
import { isManifestMediaType, type Descriptor, type ImageManifest } from '../core/oci.js';
import { readAllBounded } from '../core/streams.js';
import { repositoryScope } from './auth.js';
import { forEachLimit } from './concurrency.js';
import { RegistryError, redactUrl } from './errors.js';
import { parseManifest, type ProgressFn } from './pull.js';
import { formatReference, type Reference } from './reference.js';
import { discard, getHeader, isRetryable, type Transport } from './transport.js';

/** What we read of a manifest already under a tag: ours is far smaller, anything bigger is not it. */
const MAX_EXISTING_MANIFEST_BYTES = 4 << 20;

export interface PushContext {
  readonly transport: Transport;
  readonly concurrency: number;
  readonly retries: number;
  readonly maxRetryDelayMs: number;
  readonly sawBlob: (ref: Reference, digest: Digest) => void;
  /** Other repositories of the same registry known to hold the blob (mount sources). */
  readonly blobSources: (ref: Reference, digest: Digest) => Promise<string[]>;
}

export interface PushImageInput {
  /** The manifest exactly as it will be stored; its sha256 is the image digest. */
  readonly manifest: Buffer;
  readonly mediaType: string;
  /** Every blob the manifest references (config and layers). */
  readonly blobs: readonly Descriptor[];
}

export interface PushOptions {
  /** Tags to point at the manifest; default: the reference's tag, or by digest only. */
  readonly tags?: readonly string[];
  /** Extra repositories (same registry) to try mounting blobs from. */
  readonly mountFrom?: readonly string[];
  readonly onProgress?: ProgressFn;
  readonly signal?: AbortSignal;
}

export type BlobPushResult = 'exists' | 'mounted' | 'uploaded';

const OCTET = 'application/octet-stream';

/** HEAD: does the repository already have this blob? */
export async function blobExists(ctx: PushContext, ref: Reference, desc: Descriptor, signal?: AbortSignal): Promise<boolean> {
  const res = await ctx.transport.request({
    registry: ref.registry,
    method: 'HEAD',
    path: `/v2/${ref.repository}/blobs/${desc.digest}`,
    scopes: [repositoryScope(ref.repository, 'pull,push')],
    accept: [404],
    action: `check blob ${desc.digest}`,
    signal,
  });
  await discard(res.body);
  if (res.status !== 200) return false;
  const len = getHeader(res.headers, 'content-length');
  // A blob of another size under this digest is the registry's problem, but do not build on it.
  return len === undefined || Number(len) === desc.size;
}

function uploadUrl(res: { headers: Record<string, string | string[] | undefined>; url: URL }, method: string): URL {
  const location = getHeader(res.headers, 'location');
  if (!location) throw new RegistryError('upload session without a Location header', { method, url: redactUrl(res.url) });
  return new URL(location, res.url);
}

/** Try each known source repository; a refused mount hands back an upload session to use instead. */
async function tryMount(ctx: PushContext, ref: Reference, desc: Descriptor, sources: string[], signal?: AbortSignal): Promise<'mounted' | URL | undefined> {
  for (const from of sources) {
    try {
      const res = await ctx.transport.request({
        registry: ref.registry,
        method: 'POST',
        path: `/v2/${ref.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
        scopes: [repositoryScope(ref.repository, 'pull,push'), repositoryScope(from, 'pull')],
        action: `mount blob ${desc.digest} from ${from}`,
        signal,
      });
      await discard(res.body);
      if (res.status === 201) return 'mounted';
      if (res.status === 202) return uploadUrl(res, 'POST');
    } catch (err) {
      if (signal?.aborted) throw err;
      // Refused (no pull right on the source, unknown blob): fall back to an upload.
      if (err instanceof RegistryError && !err.retryable) continue;
      throw err;
    }
  }
  return undefined;
}

function progressCounter(desc: Descriptor, onProgress: (ProgressFn) | undefined): Transform {
  let done = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      onProgress?.(desc.digest, done, desc.size);
      cb(null, chunk);
    },
  });
}

/** POST a session, then PUT the whole blob as a stream with its digest. */
async function uploadOnce(ctx: PushContext, ref: Reference, desc: Descriptor, provider: BlobProvider, session: URL | undefined, opts: { onProgress?: ProgressFn; signal?: AbortSignal }): Promise<void> {
  let url = session;
  if (!url) {
    const res = await ctx.transport.request({
      registry: ref.registry,
      method: 'POST',
      path: `/v2/${ref.repository}/blobs/uploads/`,
      scopes: [repositoryScope(ref.repository, 'pull,push')],
      action: `start upload of ${desc.digest}`,
      signal: opts.signal,
    });
    await discard(res.body);
    url = uploadUrl(res, 'POST');
  }
  url.searchParams.set('digest', desc.digest);
  const body = async (): Promise<Readable> => {
    const src = await provider.open(desc.digest, opts.signal);
    const counter = progressCounter(desc, opts.onProgress);
    src.on('error', (e) => counter.destroy(e));
    return src.pipe(counter);
  };
  const res = await ctx.transport.request({
    registry: ref.registry,
    method: 'PUT',
    path: url,
    headers: { 'content-type': OCTET, 'content-length': String(desc.size) },
    body,
    scopes: [repositoryScope(ref.repository, 'pull,push')],
    // The upload session may be gone after a failure; the retry starts over with a new POST.
    retry: false,
    action: `upload blob ${desc.digest}`,
    signal: opts.signal,
  });
  await discard(res.body);
}

/**
 * Make sure one blob is in the repository: HEAD, then mount, then upload
 * (retried from a fresh session). The HEAD goes first even for a blob that
 * is likely new (Docker skips it for a layer it has no record of): a mount or
 * an upload of a blob the repository holds rewrites its link, and a manifest
 * PUT of another push beside it can then find the blob unknown
 * (blobUnknownToManifest). Skipping the HEAD for small new blobs made that
 * four times as frequent in a stress run (16 of 96 pushes, against 4).
 */
export async function pushBlob(ctx: PushContext, ref: Reference, desc: Descriptor, provider: BlobProvider, opts: { mountFrom?: readonly string[]; onProgress?: ProgressFn; signal?: AbortSignal } = {}): Promise<BlobPushResult> {
  const done = () => {
    opts.onProgress?.(desc.digest, desc.size, desc.size);
    ctx.sawBlob(ref, desc.digest);
  };
  if (await blobExists(ctx, ref, desc, opts.signal)) {
    done();
    return 'exists';
  }
  const sources = [...new Set([...(await ctx.blobSources(ref, desc.digest)), ...(opts.mountFrom ?? [])])].filter((r) => r !== ref.repository);
  let session: URL | undefined;
  if (sources.length) {
    const mounted = await tryMount(ctx, ref, desc, sources, opts.signal);
    if (mounted === 'mounted') {
      done();
      return 'mounted';
    }
    session = mounted;
  }
  for (let attempt = 0; ; attempt++) {
    try {
      await uploadOnce(ctx, ref, desc, provider, session, opts);
      done();
      return 'uploaded';
    } catch (err) {
      session = undefined;
      if (opts.signal?.aborted || attempt >= ctx.retries || !isRetryable(err)) throw err;
      await backoff(attempt, ctx.maxRetryDelayMs, opts.signal);
    }
  }
}

/** PUT a manifest under a tag or its digest; returns the digest of the bytes. */
export async function putManifest(ctx: PushContext, ref: Reference, manifest: Buffer, mediaType: string, tagOrDigest?: string, signal?: AbortSignal): Promise<Digest> {
  const digest = sha256(manifest);
  const id = tagOrDigest ?? ref.tag ?? digest;
  const res = await ctx.transport.request({
    registry: ref.registry,
    method: 'PUT',
    path: `/v2/${ref.repository}/manifests/${id}`,
    headers: { 'content-type': mediaType },
    body: manifest,
    scopes: [repositoryScope(ref.repository, 'pull,push')],
    action: `push manifest ${formatReference({ registry: ref.registry, repository: ref.repository })}:${id}`,
    signal,
  });
  await discard(res.body);
  return digest;
}

/** Whether every tag already resolves to a manifest whose bytes hash to `digest`; any doubt (absent, denied, an error) says no. */
async function everyTagHolds(ctx: PushContext, ref: Reference, tags: readonly string[], digest: Digest, mediaType: string, signal?: AbortSignal): Promise<boolean> {
  for (const tag of tags) {
    try {
      const res = await ctx.transport.request({
        registry: ref.registry,
        method: 'GET',
        path: `/v2/${ref.repository}/manifests/${tag}`,
        headers: { accept: mediaType },
        scopes: [repositoryScope(ref.repository, 'pull,push')],
        accept: [404],
        retry: false,
        action: `check manifest ${formatReference({ registry: ref.registry, repository: ref.repository })}:${tag}`,
        ...(signal ? { signal } : {}),
      });
      if (res.status !== 200) {
        await discard(res.body);
        return false;
      }
      if (sha256(await readAllBounded(res.body, MAX_EXISTING_MANIFEST_BYTES, 'existing manifest')) !== digest) return false;
    } catch (err) {
      if (signal?.aborted) throw err;
      return false;
    }
  }
  return true;
}

export async function deleteManifest(ctx: PushContext, ref: Reference, signal?: AbortSignal): Promise<void> {
  if (!ref.digest) throw new CodedError('INVALID_ARGUMENT', `deleting ${formatReference(ref)} needs a digest (registries delete manifests by digest)`);
  const res = await ctx.transport.request({
    registry: ref.registry,
    method: 'DELETE',
    path: `/v2/${ref.repository}/manifests/${ref.digest}`,
    scopes: [repositoryScope(ref.repository, 'pull,push'), `repository:${ref.repository}:delete`],
    action: `delete manifest ${ref.digest}`,
    signal,
  });
  await discard(res.body);
}

/** Every blob (in parallel, bounded), then the manifest under each tag. Returns the manifest digest. */
export async function pushImage(ctx: PushContext, ref: Reference, image: PushImageInput, provider: BlobProvider, opts: PushOptions = {}): Promise<Digest> {
  const { mediaType } = parseManifest(image.manifest, image.mediaType, `manifest for ${formatReference(ref)}`);
  if (isManifestMediaType(mediaType)) {
    const m = JSON.parse(image.manifest.toString('utf8')) as ImageManifest;
    const given = new Set(image.blobs.map((b) => b.digest));
    const missing = [m.config, ...m.layers].filter((d) => !given.has(d.digest));
    if (missing.length) throw new CodedError('INVALID_ARGUMENT', `pushImage: the manifest references ${missing.length} blob(s) not given, e.g. ${missing[0]!.digest}`);
  }
  const tags = opts.tags?.length ? opts.tags : ref.tag !== undefined ? [ref.tag] : [];
  const digest = sha256(image.manifest);
  // A re-push: every tag already names exactly these manifest bytes, and a
  // registry serves a manifest only with all its blobs, so there is nothing to
  // send (ggcr skips the same way; we hash what we GET instead of trusting a header).
  if (tags.length > 0 && (await everyTagHolds(ctx, ref, tags, digest, image.mediaType, opts.signal))) return digest;
  const unique = [...new Map(image.blobs.map((b) => [b.digest, b])).values()];
  const pushBlobs = () =>
    forEachLimit(unique, ctx.concurrency, opts.signal, async (desc, signal) => {
      await pushBlob(ctx, ref, desc, provider, {
        signal,
        ...(opts.mountFrom ? { mountFrom: opts.mountFrom } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      });
    });
  await pushBlobs();
  // Only now, with every blob landed, may a tag point at the manifest; a retry goes on from the tag that was refused.
  const names = tags.length ? tags : [digest];
  let landed = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      for (; landed < names.length; landed++) await putManifest(ctx, ref, image.manifest, image.mediaType, names[landed], opts.signal);
      return digest;
    } catch (err) {
      if (opts.signal?.aborted || attempt + 1 >= MANIFEST_TRIES || !blobUnknownToManifest(err)) throw err;
      await backoff(attempt, ctx.maxRetryDelayMs, opts.signal);
      // Each blob again: a HEAD where it is there, sent again where it is not.
      await pushBlobs();
    }
  }
}

/**
 * Manifest PUTs, in all, for a push whose manifest the registry refuses for a
 * blob the push has just made sure of (blobUnknownToManifest).
 */
const MANIFEST_TRIES = 4;

/**
 * A manifest refused because the registry could not find one of its blobs,
 * right after every blob was found or sent. distribution's filesystem store
 * rewrites a blob's link in place whenever a push uploads or mounts a blob it
 * holds, and a manifest PUT that reads the link meanwhile reads nothing
 * (MANIFEST_BLOB_UNKNOWN, often with DIGEST_INVALID; nerdctl#2404,
 * distribution#4489). Concurrent pushes of images that share layers into one
 * repository, which a build service makes all the time, meet it: 4 of 96 such
 * pushes in a loopback stress run. Checking the blobs and putting the
 * manifest again after a pause gets past it.
 */
function blobUnknownToManifest(err: unknown): boolean {
  return err instanceof RegistryError && err.status === 400 && err.diagnostics.some((d) => d.code === 'MANIFEST_BLOB_UNKNOWN');
}
