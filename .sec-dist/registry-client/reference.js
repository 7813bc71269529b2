import { isDigest } from '../core/digest.js';
import { BuildliteError } from '../core/errors.js';
export class InvalidReferenceError extends BuildliteError {
    code = 'INVALID_ARGUMENT';
    constructor(input, reason) {
        // Truncated: references can come from untrusted Dockerfiles and base images.
        super(`invalid image reference ${JSON.stringify(input.slice(0, 200))}: ${reason}`);
    }
}
export const DOCKER_HUB = 'docker.io';
/** Where docker.io's API actually lives. */
export const DOCKER_HUB_HOST = 'registry-1.docker.io';
const DEFAULT_TAG = 'latest';
// The grammar of distribution/reference, written out piece by piece.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PORT = /^[0-9]{1,5}$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
const HEX64 = /^[a-f0-9]{64}$/;
const MAX_NAME = 255;
function isDomain(s) {
    let host = s;
    const portSep = s.startsWith('[') ? s.indexOf(']:') + 1 : s.lastIndexOf(':');
    if (portSep > 0) {
        const port = s.slice(portSep + 1);
        if (!PORT.test(port) || Number(port) > 65535)
            return false;
        host = s.slice(0, portSep);
    }
    if (IPV6.test(host))
        return true;
    return host.split('.').every((l) => DOMAIN_LABEL.test(l));
}
/** Whether the first path component names a registry rather than a Docker Hub namespace. */
function looksLikeRegistry(first) {
    return first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase();
}
export function parseReference(input) {
    if (input.length === 0)
        throw new InvalidReferenceError(input, 'empty');
    let rest = input;
    let digest;
    const at = rest.indexOf('@');
    if (at >= 0) {
        const d = rest.slice(at + 1);
        if (!isDigest(d))
            throw new InvalidReferenceError(input, 'the digest must be sha256:<64 lowercase hex>');
        digest = d;
        rest = rest.slice(0, at);
    }
    let tag;
    const lastColon = rest.lastIndexOf(':');
    if (lastColon > rest.lastIndexOf('/')) {
        tag = rest.slice(lastColon + 1);
        rest = rest.slice(0, lastColon);
        if (!TAG.test(tag))
            throw new InvalidReferenceError(input, `invalid tag ${JSON.stringify(tag.slice(0, 130))}`);
    }
    if (rest.length === 0)
        throw new InvalidReferenceError(input, 'missing repository name');
    let registry = DOCKER_HUB;
    let repository = rest;
    const slash = rest.indexOf('/');
    if (slash >= 0 && looksLikeRegistry(rest.slice(0, slash))) {
        registry = rest.slice(0, slash);
        repository = rest.slice(slash + 1);
        if (!isDomain(registry))
            throw new InvalidReferenceError(input, `invalid registry ${JSON.stringify(registry)}`);
    }
    if (registry === 'index.docker.io')
        registry = DOCKER_HUB;
    if (registry === DOCKER_HUB && !repository.includes('/'))
        repository = `library/${repository}`;
    if (repository.length === 0)
        throw new InvalidReferenceError(input, 'missing repository name');
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
    if (tag === undefined && digest === undefined)
        tag = DEFAULT_TAG;
    return { registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}
/** The fully qualified form, e.g. `docker.io/library/busybox:latest`. */
export function formatReference(ref) {
    return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
/** Docker's short form, e.g. `busybox:latest` (for messages meant for people). */
export function familiarReference(ref) {
    let name = `${ref.registry}/${ref.repository}`;
    if (ref.registry === DOCKER_HUB)
        name = ref.repository.replace(/^library\//, '');
    return `${name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
/** The host:port the API is served from (docker.io's lives elsewhere). */
export function registryHost(registry) {
    return registry === DOCKER_HUB ? DOCKER_HUB_HOST : registry;
}
/** The tag or digest to ask the manifests endpoint for; the digest wins. */
export function manifestIdentifier(ref) {
    return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
export function withDigest(ref, digest) {
    return { ...ref, digest };
}
export function withTag(ref, tag) {
    if (!TAG.test(tag))
        throw new InvalidReferenceError(tag, 'invalid tag');
    const { digest: _d, ...rest } = ref;
    return { ...rest, tag };
}
/** Whether a registry host is on this machine (127.0.0.0/8, localhost, ::1). */
export function isLoopbackRegistry(registry) {
    const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d+$/, '');
    return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
//# sourceMappingURL=reference.js.map