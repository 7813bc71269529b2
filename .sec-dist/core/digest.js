import { createHash } from 'node:crypto';
import { BuildliteError } from './errors.js';
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
export class InvalidDigestError extends BuildliteError {
    code = 'INVALID_DIGEST';
    constructor(value) {
        // The value is echoed truncated: it may come from an untrusted registry.
        super(`invalid digest ${JSON.stringify(value.slice(0, 80))}: want sha256:<64 lowercase hex>`);
    }
}
export function parseDigest(value) {
    if (!DIGEST_RE.test(value))
        throw new InvalidDigestError(value);
    return value;
}
export function isDigest(value) {
    return typeof value === 'string' && DIGEST_RE.test(value);
}
/** The 64 hex characters of a digest, e.g. for file names. */
export function digestHex(d) {
    return d.slice('sha256:'.length);
}
export function sha256(data) {
    return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
export function digestFromHash(h) {
    return `sha256:${h.digest('hex')}`;
}
/**
 * Canonical JSON: object keys sorted, no whitespace, `undefined` members dropped.
 * Every digest of a structured value goes through here so two machines agree.
 */
export function canonicalJson(value) {
    return JSON.stringify(sortDeep(value));
}
function sortDeep(value) {
    // As JSON.stringify does: a Date (or anything with toJSON) encodes as what toJSON returns.
    if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
        value = value.toJSON();
    }
    if (Array.isArray(value))
        return value.map((v) => (v === undefined ? null : sortDeep(v)));
    if (value !== null && typeof value === 'object') {
        const out = {};
        for (const k of Object.keys(value).sort()) {
            const v = value[k];
            if (v !== undefined)
                out[k] = sortDeep(v);
        }
        return out;
    }
    return value;
}
/**
 * Digest of a structured value under a kind tag, so values of different kinds
 * that happen to encode alike never collide (BuildKit's cachedigest type tags).
 */
export function digestJson(kindTag, value) {
    return sha256(`${kindTag}\0${canonicalJson(value)}`);
}
//# sourceMappingURL=digest.js.map