import { Transform } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256 } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { isManifestMediaType } from '../core/oci.js';
import { repositoryScope } from './auth.js';
import { forEachLimit } from './concurrency.js';
import { RegistryError, redactUrl } from './errors.js';
import { parseManifest } from './pull.js';
import { formatReference } from './reference.js';
import { backoffMs, discard, getHeader, isRetryable } from './transport.js';
const OCTET = 'application/octet-stream';
/** HEAD: does the repository already have this blob? */
export async function blobExists(ctx, ref, desc, signal) {
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
    if (res.status !== 200)
        return false;
    const len = getHeader(res.headers, 'content-length');
    // A blob of another size under this digest is the registry's problem, but do not build on it.
    return len === undefined || Number(len) === desc.size;
}
function uploadUrl(res, method) {
    const location = getHeader(res.headers, 'location');
    if (!location)
        throw new RegistryError('upload session without a Location header', { method, url: redactUrl(res.url) });
    return new URL(location, res.url);
}
/** Try each known source repository; a refused mount hands back an upload session to use instead. */
async function tryMount(ctx, ref, desc, sources, signal) {
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
            if (res.status === 201)
                return 'mounted';
            if (res.status === 202)
                return uploadUrl(res, 'POST');
        }
        catch (err) {
            if (signal?.aborted)
                throw err;
            // Refused (no pull right on the source, unknown blob): fall back to an upload.
            if (err instanceof RegistryError && !err.retryable)
                continue;
            throw err;
        }
    }
    return undefined;
}
function progressCounter(desc, onProgress) {
    let done = 0;
    return new Transform({
        transform(chunk, _enc, cb) {
            done += chunk.length;
            onProgress?.(desc.digest, done, desc.size);
            cb(null, chunk);
        },
    });
}
/** POST a session, then PUT the whole blob as a stream with its digest. */
async function uploadOnce(ctx, ref, desc, provider, session, opts) {
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
    const body = async () => {
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
/** Make sure one blob is in the repository: HEAD, then mount, then upload (retried from a fresh session). */
export async function pushBlob(ctx, ref, desc, provider, opts = {}) {
    const done = () => {
        opts.onProgress?.(desc.digest, desc.size, desc.size);
        ctx.sawBlob(ref, desc.digest);
    };
    if (await blobExists(ctx, ref, desc, opts.signal)) {
        done();
        return 'exists';
    }
    const sources = [...new Set([...ctx.blobSources(ref, desc.digest), ...(opts.mountFrom ?? [])])].filter((r) => r !== ref.repository);
    let session;
    if (sources.length) {
        const mounted = await tryMount(ctx, ref, desc, sources, opts.signal);
        if (mounted === 'mounted') {
            done();
            return 'mounted';
        }
        session = mounted;
    }
    for (let attempt = 0;; attempt++) {
        try {
            await uploadOnce(ctx, ref, desc, provider, session, opts);
            done();
            return 'uploaded';
        }
        catch (err) {
            session = undefined;
            if (opts.signal?.aborted || attempt >= ctx.retries || !isRetryable(err))
                throw err;
            await sleep(backoffMs(attempt, undefined, ctx.maxRetryDelayMs), undefined, opts.signal ? { signal: opts.signal } : undefined).catch(() => undefined);
        }
    }
}
/** PUT a manifest under a tag or its digest; returns the digest of the bytes. */
export async function putManifest(ctx, ref, manifest, mediaType, tagOrDigest, signal) {
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
export async function deleteManifest(ctx, ref, signal) {
    if (!ref.digest)
        throw new CodedError('INVALID_ARGUMENT', `deleting ${formatReference(ref)} needs a digest (registries delete manifests by digest)`);
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
export async function pushImage(ctx, ref, image, provider, opts = {}) {
    const { mediaType } = parseManifest(image.manifest, image.mediaType, `manifest for ${formatReference(ref)}`);
    if (isManifestMediaType(mediaType)) {
        const m = JSON.parse(image.manifest.toString('utf8'));
        const given = new Set(image.blobs.map((b) => b.digest));
        const missing = [m.config, ...m.layers].filter((d) => !given.has(d.digest));
        if (missing.length)
            throw new CodedError('INVALID_ARGUMENT', `pushImage: the manifest references ${missing.length} blob(s) not given, e.g. ${missing[0].digest}`);
    }
    const unique = [...new Map(image.blobs.map((b) => [b.digest, b])).values()];
    await forEachLimit(unique, ctx.concurrency, opts.signal, async (desc, signal) => {
        await pushBlob(ctx, ref, desc, provider, {
            signal,
            ...(opts.mountFrom ? { mountFrom: opts.mountFrom } : {}),
            ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        });
    });
    // Only now, with every blob landed, may a tag point at the manifest.
    const tags = opts.tags?.length ? opts.tags : ref.tag !== undefined ? [ref.tag] : [];
    const digest = sha256(image.manifest);
    if (tags.length === 0)
        await putManifest(ctx, ref, image.manifest, image.mediaType, digest, opts.signal);
    for (const tag of tags)
        await putManifest(ctx, ref, image.manifest, image.mediaType, tag, opts.signal);
    return digest;
}
//# sourceMappingURL=push.js.map