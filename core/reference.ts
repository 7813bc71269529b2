import { isDigest, type Digest } from './digest.js';
import { BuildliteError, type ErrorCode } from './errors.js';

/**
 * Image references: the grammar of distribution/reference and Docker's
 * normalisation, as data. It lives in core so every boundary (CLI flags, the
 * API, the builder) parses a reference the same way before anything runs;
 * registry-client adds what only talking to a registry needs.
 */

/**
 * An image reference, parsed once at the boundary (Docker's normalisation):
 * `busybox` → registry `docker.io`, repository `library/busybox`, tag `latest`.
 * A reference with a digest and no tag keeps `tag` undefined; one with both keeps both,
 * and the digest wins when fetching.
 */
export interface Reference {
  readonly registry: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

export class InvalidReferenceError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
  constructor(input: string, reason: string) {
    // Redacted: a mistyped reference may carry a password. Truncated: references can come from untrusted Dockerfiles and base images.
    super(`invalid image reference ${JSON.stringify(redactReference(input).slice(0, 200))}: ${reason}`);
  }
}

// OCI's digest grammar (algorithm ":" encoded), valid or not: what may follow a reference's own `@`.
const DIGEST_SHAPE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/**
 * The index of the `@` that ends user info (`user:password@host/repo`), or -1.
 * A valid reference has one `@`, after the whole name (so after every `/`), and
 * a digest follows it; an `@` before a `/`, or one followed by something that is
 * not shaped like a digest, can only be user info. The last such `@` counts: a
 * password may hold `@` itself.
 */
function userinfoEnd(input: string): number {
  const lastSlash = input.lastIndexOf('/');
  for (let i = input.lastIndexOf('@'); i >= 0; i = i === 0 ? -1 : input.lastIndexOf('@', i - 1)) {
    if (i < lastSlash || !DIGEST_SHAPE.test(input.slice(i + 1))) return i;
  }
  return -1;
}

/**
 * A reference fit for messages and logs: whatever could be user info is
 * replaced by `***`. Anything before an `@` not followed by a valid digest goes,
 * so a mistyped reference (`user:pw@host:5000`) shows no password either.
 */
export function redactReference(input: string): string {
  for (let i = input.lastIndexOf('@'); i >= 0; i = i === 0 ? -1 : input.lastIndexOf('@', i - 1)) {
    if (!isDigest(input.slice(i + 1))) return `***${input.slice(i)}`;
  }
  return input;
}

/** Whether `input` names a registry login (`user:password@host/...`) instead of an image. */
export function hasCredentials(input: string): boolean {
  return userinfoEnd(input) >= 0;
}

export const DOCKER_HUB = 'docker.io';
const DEFAULT_TAG = 'latest';

// The grammar of distribution/reference, written out piece by piece.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PORT = /^[0-9]{1,5}$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
const HEX64 = /^[a-f0-9]{64}$/;
const MAX_NAME = 255;

function isDomain(s: string): boolean {
  let host = s;
  const portSep = s.startsWith('[') ? s.indexOf(']:') + 1 : s.lastIndexOf(':');
  if (portSep > 0) {
    const port = s.slice(portSep + 1);
    if (!PORT.test(port) || Number(port) > 65535) return false;
    host = s.slice(0, portSep);
  }
  if (IPV6.test(host)) return true;
  return host.split('.').every((l) => DOMAIN_LABEL.test(l));
}

/** Whether the first path component names a registry rather than a Docker Hub namespace. */
function looksLikeRegistry(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase();
}

export function parseReference(input: string): Reference {
  if (input.length === 0) throw new InvalidReferenceError(input, 'empty');
  const userinfo = userinfoEnd(input);
  if (userinfo >= 0) {
    const host = input.slice(userinfo + 1).split('/')[0] ?? '';
    const login = `buildlite login${isDomain(host) ? ` ${host}` : ''}`;
    throw new InvalidReferenceError(input, `it carries credentials (user:password@); a reference never does: store them with ${login}`);
  }
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw new InvalidReferenceError(input, 'the digest must be sha256:<64 lowercase hex>');
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw new InvalidReferenceError(input, `invalid tag ${JSON.stringify(tag.slice(0, 130))}`);
  }
  if (rest.length === 0) throw new InvalidReferenceError(input, 'missing repository name');

  let registry = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0 && looksLikeRegistry(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!isDomain(registry)) throw new InvalidReferenceError(input, `invalid registry ${JSON.stringify(registry)}`);
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  if (repository.length === 0) throw new InvalidReferenceError(input, 'missing repository name');
  for (const part of repository.split('/')) {
    if (!PATH_COMPONENT.test(part)) {
      const why = part.toLowerCase() !== part ? 'repository names must be lowercase' : `invalid path component ${JSON.stringify(part.slice(0, 80))}`;
      throw new InvalidReferenceError(input, why);
    }
  }
  if (registry.length + 1 + repository.length > MAX_NAME) {
    throw new InvalidReferenceError(input, `name longer than ${MAX_NAME} characters`);
  }
  // A bare 64-hex name is an image ID to Docker, never a repository.
  if (registry === DOCKER_HUB && HEX64.test(repository.replace(/^library\//, '')) && !input.includes('/')) {
    throw new InvalidReferenceError(input, 'a 64-hex name is ambiguous with an image ID');
  }
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The fully qualified form, e.g. `docker.io/library/busybox:latest`. */
export function formatReference(ref: Reference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** Docker's short form, e.g. `busybox:latest` (for messages meant for people). */
export function familiarReference(ref: Reference): string {
  let name = `${ref.registry}/${ref.repository}`;
  if (ref.registry === DOCKER_HUB) name = ref.repository.replace(/^library\//, '');
  return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

export function withDigest(ref: Reference, digest: Digest): Reference {
  return { ...ref, digest };
}

export function withTag(ref: Reference, tag: string): Reference {
  if (!TAG.test(tag)) throw new InvalidReferenceError(tag, 'invalid tag');
  const { digest: _d, ...rest } = ref;
  return { ...rest, tag };
}
