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
  /**
   * Repositories of the reference's registry known to hold the blob, its own
   * included: where this machine pulled it from or pushed it to (mount
   * sources, and whether to ask the repository first).
   */
  readonly blobHomes: (ref: Reference, digest: Digest) => Promise<readonly string[]>;
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

/**
 * A blob up to this size that the target repository is not known to hold is
 * uploaded without a HEAD first, as Docker pushes a layer it has no record
 * of: for a blob this machine made, the answer is nearly always no, and
 * sending a small blob the registry turns out to have costs about what the
 * question does (a round trip, one per blob of a new image). A bigger blob is
 * asked about first: another builder may have pushed the same bytes.
 */
export const ASK_FIRST_BYTES = 1 << 20;

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

/** An upload session a refused mount opened, for a blob the repository turned out to hold: best effort, as the registry expires it anyway. */
async function cancelUpload(ctx: PushContext, ref: Reference, session: URL, signal?: AbortSignal): Promise<void> {
  try {
    const res = await ctx.transport.request({
      registry: ref.registry,
      method: 'DELETE',
      path: session,
      scopes: [repositoryScope(ref.repository, 'pull,push')],
      retry: false,
      action: 'cancel upload',
      signal,
    });
    await discard(res.body);
  } catch (err) {
    if (signal?.aborted) throw err;
  }
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
 * Make sure one blob is in the repository, in the fewest round trips that
 * can tell: a HEAD where the blob is known to be (likely all it takes); else
 * a mount from a repository of the registry known to hold it (it succeeds
 * for a blob the target holds too, so no HEAD before it); else, for a blob
 * too big to send on a guess, a HEAD; then the upload (retried from a fresh
 * session).
 */
export async function pushBlob(ctx: PushContext, ref: Reference, desc: Descriptor, provider: BlobProvider, opts: { mountFrom?: readonly string[]; onProgress?: ProgressFn; signal?: AbortSignal } = {}): Promise<BlobPushResult> {
  const done = () => {
    opts.onProgress?.(desc.digest, desc.size, desc.size);
    ctx.sawBlob(ref, desc.digest);
  };
  const homes = await ctx.blobHomes(ref, desc.digest);
  let asked = false;
  const isThere = () => {
    asked = true;
    return blobExists(ctx, ref, desc, opts.signal);
  };
  if (homes.includes(ref.repository) && (await isThere())) {
    done();
    return 'exists';
  }
  const sources = [...new Set([...homes, ...(opts.mountFrom ?? [])])].filter((r) => r !== ref.repository);
  let session: URL | undefined;
  if (sources.length) {
    const mounted = await tryMount(ctx, ref, desc, sources, opts.signal);
    if (mounted === 'mounted') {
      done();
      return 'mounted';
    }
    session = mounted;
  }
  if (!asked && desc.size > ASK_FIRST_BYTES && (await isThere())) {
    if (session) await cancelUpload(ctx, ref, session, opts.signal);
    done();
    return 'exists';
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

async function someBlobKnownThere(ctx: PushContext, ref: Reference, blobs: readonly Descriptor[]): Promise<boolean> {
  const homes = await Promise.all(blobs.map((b) => ctx.blobHomes(ref, b.digest)));
  return homes.some((h) => h.includes(ref.repository));
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
  const unique = [...new Map(image.blobs.map((b) => [b.digest, b])).values()];
  // A re-push: every tag already names exactly these manifest bytes, and a
  // registry serves a manifest only with all its blobs, so there is nothing to
  // send (ggcr skips the same way; we hash what we GET instead of trusting a header).
  // Only asked when the repository is known to hold a blob of the image: a new
  // image's first push would spend a round trip on a certain no.
  if (tags.length > 0 && (await someBlobKnownThere(ctx, ref, unique)) && (await everyTagHolds(ctx, ref, tags, digest, image.mediaType, opts.signal))) return digest;
  await forEachLimit(unique, ctx.concurrency, opts.signal, async (desc, signal) => {
    await pushBlob(ctx, ref, desc, provider, {
      signal,
      ...(opts.mountFrom ? { mountFrom: opts.mountFrom } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
  });
  // Only now, with every blob landed, may a tag point at the manifest.
  if (tags.length === 0) await putManifest(ctx, ref, image.manifest, image.mediaType, digest, opts.signal);
  for (const tag of tags) await putManifest(ctx, ref, image.manifest, image.mediaType, tag, opts.signal);
  return digest;
}
