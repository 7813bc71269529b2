import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { canonicalJson, sha256 } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { readAllBounded, verifyDigest } from '../core/streams.js';
/** True when the store can tell whether it already holds a blob. */
export function hasStat(store) {
    return typeof store.stat === 'function';
}
/**
 * Writes bytes into a store through an ingest and commits them. A known blob
 * (by `expected.digest`, or by hashing a buffer first) that is already present
 * is not written again. A failed write leaves nothing behind.
 */
export async function writeBlob(store, source, expected) {
    let want = expected;
    if (typeof source === 'string' || Buffer.isBuffer(source)) {
        const bytes = typeof source === 'string' ? Buffer.from(source) : source;
        want = { digest: sha256(bytes), size: bytes.length, ...expected };
        source = Readable.from([bytes]);
    }
    if (want?.digest !== undefined && want.size !== undefined && hasStat(store)) {
        const present = await store.stat(want.digest);
        if (present && present.size === want.size) {
            if (source instanceof Readable)
                source.destroy();
            return present;
        }
    }
    const ref = want?.digest ?? `write-${randomBytes(12).toString('hex')}`;
    const writer = await store.ingest(ref, want);
    try {
        await pipeline(source, writer);
        return await writer.commit();
    }
    catch (err) {
        await writer.abort();
        throw err;
    }
}
/** Stores a value as canonical JSON (sorted keys, no whitespace); the digest names exactly the stored bytes. */
export async function putJson(store, value) {
    const bytes = Buffer.from(canonicalJson(value));
    const info = await writeBlob(store, bytes);
    return { digest: info.digest, size: info.size, bytes };
}
/** Reads a small JSON blob, verifying its digest and refusing more than `maxBytes`. */
export async function readJson(provider, digest, maxBytes) {
    const stream = await provider.open(digest);
    const verified = stream.pipe(verifyDigest({ digest }, 'JSON blob'));
    stream.once('error', (err) => verified.destroy(err));
    const bytes = await readAllBounded(verified, maxBytes, `JSON blob ${digest}`).finally(() => stream.destroy());
    try {
        return JSON.parse(bytes.toString('utf8'));
    }
    catch (err) {
        throw new CodedError('INVALID_ARGUMENT', `blob ${digest} is not valid JSON`, { cause: err });
    }
}
/** Copies one blob between stores, verifying it in flight; a blob already in `to` is not copied. */
export async function copyBlob(from, to, digest, signal) {
    const source = await from.stat(digest);
    if (!source)
        throw new CodedError('NOT_FOUND', `blob ${digest} not found in the source store`);
    if (hasStat(to)) {
        const present = await to.stat(digest);
        if (present && present.size === source.size)
            return present;
    }
    const writer = await to.ingest(digest, source);
    try {
        const stream = await from.open(digest, signal);
        await pipeline(stream, verifyDigest(source), writer, { signal });
        return await writer.commit();
    }
    catch (err) {
        await writer.abort();
        throw err;
    }
}
//# sourceMappingURL=blob-helpers.js.map