import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { BuildliteError } from './errors.js';
export class DigestMismatchError extends BuildliteError {
    want;
    got;
    code = 'DIGEST_MISMATCH';
    constructor(want, got, what = 'content') {
        super(want.size !== undefined && got.size !== want.size
            ? `${what} ${want.digest}: size mismatch, want ${want.size} bytes, got ${got.size}`
            : `${what}: digest mismatch, want ${want.digest}, got ${got.digest ?? 'unknown'}`);
        this.want = want;
        this.got = got;
    }
    details() {
        return { want: this.want.digest, got: this.got.digest ?? '', bytes: this.got.size };
    }
}
export class LimitExceededError extends BuildliteError {
    code = 'LIMIT_EXCEEDED';
}
/**
 * A pass-through that hashes and counts, and fails at end of stream when the
 * bytes do not match the descriptor, so a downstream ingest aborts instead of
 * committing. It also fails early once more bytes than announced arrive.
 */
export function verifyDigest(want, what = 'blob') {
    const hash = createHash('sha256');
    let size = 0;
    return new Transform({
        transform(chunk, _enc, cb) {
            size += chunk.length;
            if (want.size !== undefined && size > want.size) {
                cb(new DigestMismatchError(want, { size }, what));
                return;
            }
            hash.update(chunk);
            cb(null, chunk);
        },
        flush(cb) {
            const got = `sha256:${hash.digest('hex')}`;
            if ((want.size !== undefined && size !== want.size) || got !== want.digest) {
                cb(new DigestMismatchError(want, { digest: got, size }, what));
                return;
            }
            cb();
        },
    });
}
/** Fails once more than `max` bytes pass: bounds what an untrusted peer can make us hold or write. */
export function limitBytes(max, what) {
    let size = 0;
    return new Transform({
        transform(chunk, _enc, cb) {
            size += chunk.length;
            if (size > max)
                cb(new LimitExceededError(`${what} is larger than the limit of ${max} bytes`));
            else
                cb(null, chunk);
        },
    });
}
/** A tap that hashes and counts what passes through; read `digest()` and `size` after the end. */
export class HashingTap extends Transform {
    onProgress;
    hash = createHash('sha256');
    size = 0;
    result;
    constructor(onProgress) {
        super();
        this.onProgress = onProgress;
    }
    _transform(chunk, _enc, cb) {
        this.size += chunk.length;
        this.hash.update(chunk);
        this.onProgress?.(this.size);
        cb(null, chunk);
    }
    digest() {
        this.result ??= `sha256:${this.hash.digest('hex')}`;
        return this.result;
    }
}
/** Read a whole small stream into memory, failing past `max` bytes. Only for JSON documents. */
export async function readAllBounded(stream, max, what) {
    const chunks = [];
    let size = 0;
    for await (const c of stream) {
        const b = typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        size += b.length;
        if (size > max)
            throw new LimitExceededError(`${what} is larger than the limit of ${max} bytes`);
        chunks.push(b);
    }
    return Buffer.concat(chunks, size);
}
//# sourceMappingURL=streams.js.map