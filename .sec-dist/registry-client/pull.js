import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestHex, sha256 } from '../core/digest.js';
import { isIndexMediaType, isManifestMediaType, MediaType, platformString } from '../core/oci.js';
import { DigestMismatchError, HashingTap, readAllBounded, verifyDigest } from '../core/streams.js';
import { forEachLimit } from './concurrency.js';
import { InvalidDocumentError } from './errors.js';
import { formatReference, manifestIdentifier, withDigest } from './reference.js';
import { backoffMs, discard, getHeader, isRetryable } from './transport.js';
import { repositoryScope } from './auth.js';
const ACCEPT = [MediaType.OciIndex, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.DockerManifest].join(', ');
function mediaTypeOf(contentType) {
    const mt = contentType?.split(';')[0]?.trim().toLowerCase();
    return mt || undefined;
}
/** Parse and check a manifest or index: known type, Content-Type agreeing with the body, schema 2. */
export function parseManifest(bytes, contentType, what) {
    let doc;
    try {
        doc = JSON.parse(bytes.toString('utf8'));
    }
    catch {
        throw new InvalidDocumentError(`${what}: manifest is not valid JSON`);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc))
        throw new InvalidDocumentError(`${what}: manifest is not a JSON object`);
    const header = mediaTypeOf(contentType);
    const inBody = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
    // Ambiguous documents are refused: both sources must agree when both exist.
    if (inBody && header && header !== inBody && header !== 'application/json' && header !== 'application/octet-stream') {
        throw new InvalidDocumentError(`${what}: Content-Type ${header} does not match the manifest's mediaType ${inBody}`);
    }
    const hasManifests = Array.isArray(doc.manifests);
    const hasConfig = doc.config !== undefined && Array.isArray(doc.layers);
    if (hasManifests && hasConfig)
        throw new InvalidDocumentError(`${what}: document is both an index and a manifest`);
    const mediaType = inBody ?? (header && header !== 'application/json' ? header : hasManifests ? MediaType.OciIndex : MediaType.OciManifest);
    if (doc.schemaVersion !== 2)
        throw new InvalidDocumentError(`${what}: unsupported schemaVersion ${String(doc.schemaVersion).slice(0, 20)} (schema 1 images are not supported)`);
    if (isIndexMediaType(mediaType)) {
        if (!hasManifests)
            throw new InvalidDocumentError(`${what}: index without manifests`);
    }
    else if (isManifestMediaType(mediaType)) {
        if (!hasConfig)
            throw new InvalidDocumentError(`${what}: manifest without config or layers`);
    }
    else {
        throw new InvalidDocumentError(`${what}: unsupported manifest media type ${mediaType.slice(0, 100)}`);
    }
    return { mediaType, parsed: doc };
}
/** GET a manifest by the reference's digest (verified) or tag, or by a descriptor (digest and size verified). */
export async function fetchManifest(ctx, ref, signal, desc) {
    const id = desc?.digest ?? manifestIdentifier(ref);
    const what = `${formatReference({ registry: ref.registry, repository: ref.repository })}@${id}`;
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
    let bytes;
    try {
        bytes = await readAllBounded(res.body, limit, `manifest ${what}`);
    }
    catch (err) {
        await discard(res.body);
        if (desc && desc.size <= ctx.limits.maxManifestBytes)
            throw new DigestMismatchError({ digest: desc.digest, size: desc.size }, { size: desc.size + 1 }, 'manifest');
        throw err;
    }
    const digest = sha256(bytes);
    // Never trust Docker-Content-Digest: the bytes name themselves.
    const want = desc?.digest ?? ref.digest;
    if (want && digest !== want)
        throw new DigestMismatchError({ digest: want }, { digest, size: bytes.length }, 'manifest');
    if (desc && bytes.length !== desc.size)
        throw new DigestMismatchError({ digest: desc.digest, size: desc.size }, { digest, size: bytes.length }, 'manifest');
    const { mediaType, parsed } = parseManifest(bytes, getHeader(res.headers, 'content-type'), what);
    if (desc && desc.mediaType && desc.mediaType !== mediaType) {
        throw new InvalidDocumentError(`${what}: descriptor says ${desc.mediaType} but the manifest is ${mediaType}`);
    }
    ctx.sawBlob(ref, digest);
    return { digest, mediaType, bytes, parsed };
}
function platformMatches(have, want) {
    if (!have || have.os !== want.os || have.architecture !== want.architecture)
        return false;
    if (!want.variant)
        return true;
    // arm64's only variant is v8; an index often omits it.
    return have.variant === want.variant || (want.architecture === 'arm64' && want.variant === 'v8' && !have.variant);
}
/** GET a blob by digest; the stream fails at its end when digest or size do not match. */
export async function fetchBlob(ctx, ref, desc, signal) {
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
async function fetchConfig(ctx, ref, desc, signal) {
    if (desc.size > ctx.limits.maxConfigBytes)
        throw new InvalidDocumentError(`image config ${desc.digest} is ${desc.size} bytes, over the limit of ${ctx.limits.maxConfigBytes}`);
    for (let attempt = 0;; attempt++) {
        try {
            const stream = await fetchBlob(ctx, ref, desc, signal);
            return await readAllBounded(stream, ctx.limits.maxConfigBytes, `image config ${desc.digest}`);
        }
        catch (err) {
            if (signal?.aborted || attempt >= ctx.retries || !isRetryable(err))
                throw err;
            await sleep(backoffMs(attempt, undefined, ctx.maxRetryDelayMs), undefined, signal ? { signal } : undefined).catch(() => undefined);
        }
    }
}
/** Tag or digest → platform manifest → config, every document verified. */
export async function resolve(ctx, ref, platform, signal) {
    let top = await fetchManifest(ctx, ref, signal);
    let index;
    if (isIndexMediaType(top.mediaType)) {
        const list = top.parsed.manifests;
        const pick = list.find((d) => isManifestMediaType(d.mediaType) && platformMatches(d.platform, platform));
        if (!pick) {
            const have = list.map((d) => (d.platform ? platformString(d.platform) : '?')).join(', ');
            throw new InvalidDocumentError(`${formatReference(ref)} has no image for ${platformString(platform)} (it has: ${have.slice(0, 300)})`);
        }
        index = { digest: top.digest, mediaType: top.mediaType };
        top = await fetchManifest(ctx, ref, signal, pick);
        if (!isManifestMediaType(top.mediaType))
            throw new InvalidDocumentError(`${formatReference(ref)}: nested indexes are not supported`);
    }
    const manifest = top.parsed;
    const configBytes = await fetchConfig(ctx, ref, manifest.config, signal);
    let config;
    try {
        config = JSON.parse(configBytes.toString('utf8'));
    }
    catch {
        throw new InvalidDocumentError(`image config ${manifest.config.digest} is not valid JSON`);
    }
    if (!config || typeof config !== 'object' || !config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
        throw new InvalidDocumentError(`image config ${manifest.config.digest} has no rootfs.diff_ids`);
    }
    if (config.rootfs.diff_ids.length !== manifest.layers.length) {
        throw new InvalidDocumentError(`image ${top.digest}: ${manifest.layers.length} layers but ${config.rootfs.diff_ids.length} diff ids`);
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
async function ingestBytes(store, digest, bytes) {
    const have = await store.stat(digest);
    if (have && have.size === bytes.length)
        return;
    const w = await store.ingest(ingestRef(digest), { digest, size: bytes.length });
    try {
        await pipeline(async function* () {
            yield bytes;
        }, w);
        await w.commit();
    }
    catch (err) {
        await w.abort();
        throw err;
    }
}
function ingestRef(digest) {
    // Unique per attempt: two pulls of one blob must not share an ingest.
    return `pull-${digestHex(digest).slice(0, 24)}-${randomBytes(4).toString('hex')}`;
}
/** Stream one blob into the store, verified in flight; retries transient failures from the start. */
async function pullBlob(ctx, ref, store, desc, opts, signal) {
    const have = await store.stat(desc.digest);
    if (have && have.size === desc.size) {
        opts.onProgress?.(desc.digest, desc.size, desc.size);
        return;
    }
    for (let attempt = 0;; attempt++) {
        const w = await store.ingest(ingestRef(desc.digest), { digest: desc.digest, size: desc.size });
        try {
            const body = await fetchBlob(ctx, ref, desc, signal);
            const tap = opts.onProgress ? new HashingTap((done) => opts.onProgress(desc.digest, done, desc.size)) : new PassThrough();
            await pipeline(body, tap, w, { signal });
            await w.commit();
            return;
        }
        catch (err) {
            await w.abort();
            if (signal.aborted || attempt >= ctx.retries || !isRetryable(err))
                throw err;
            await sleep(backoffMs(attempt, undefined, ctx.maxRetryDelayMs), undefined, { signal }).catch(() => undefined);
        }
    }
}
/** Resolve, then fetch config, manifest and every missing layer into the store (bounded concurrency). */
export async function pullImage(ctx, ref, store, opts) {
    const resolved = await resolve(ctx, ref, opts.platform, opts.signal);
    await ingestBytes(store, resolved.configDigest, resolved.configBytes);
    await forEachLimit(resolved.manifest.layers, ctx.concurrency, opts.signal, async (layer, signal) => {
        await pullBlob(ctx, ref, store, layer, opts, signal);
        ctx.sawBlob(ref, layer.digest);
    });
    // The manifest goes in last: its presence then means the whole image is local.
    await ingestBytes(store, resolved.manifestDigest, resolved.manifestBytes);
    return resolved;
}
//# sourceMappingURL=pull.js.map