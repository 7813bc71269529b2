import { createHash, type Hash } from 'node:crypto';
import { BuildliteError, type ErrorCode } from './errors.js';

/** A content digest, `sha256:<64 hex>`. Only parseDigest/digest helpers produce one. */
export type Digest = string & { readonly __brand: 'Digest' };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export class InvalidDigestError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_DIGEST';
  constructor(value: string) {
    // The value is echoed truncated: it may come from an untrusted registry.
    super(`invalid digest ${JSON.stringify(value.slice(0, 80))}: want sha256:<64 lowercase hex>`);
  }
}

export function parseDigest(value: string): Digest {
  if (!DIGEST_RE.test(value)) throw new InvalidDigestError(value);
  return value as Digest;
}

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST_RE.test(value);
}

/** The 64 hex characters of a digest, e.g. for file names. */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export function digestFromHash(h: Hash): Digest {
  return `sha256:${h.digest('hex')}` as Digest;
}

/**
 * Canonical JSON: object keys sorted, no whitespace, `undefined` members dropped.
 * Every digest of a structured value goes through here so two machines agree.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortDeep(value));
}

function sortDeep(value: unknown): unknown {
  // As JSON.stringify does: a Date (or anything with toJSON) encodes as what toJSON returns.
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : sortDeep(v)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortDeep(v);
    }
    return out;
  }
  return value;
}

/**
 * Digest of a structured value under a kind tag, so values of different kinds
 * that happen to encode alike never collide (BuildKit's cachedigest type tags).
 */
export function digestJson(kindTag: string, value: unknown): Digest {
  return sha256(`${kindTag}\0${canonicalJson(value)}`);
}
