import { DOCKER_HUB, type Reference } from '../core/reference.js';

// The grammar lives in core (every boundary parses references before a build
// starts); this module adds what only talking to a registry needs.
export {
  parseReference,
  formatReference,
  familiarReference,
  withDigest,
  withTag,
  hasCredentials,
  redactReference,
  InvalidReferenceError,
  DOCKER_HUB,
  type Reference,
} from '../core/reference.js';

/** Where docker.io's API actually lives. */
export const DOCKER_HUB_HOST = 'registry-1.docker.io';
const DEFAULT_TAG = 'latest';

/** The host:port the API is served from (docker.io's lives elsewhere). */
export function registryHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_HOST : registry;
}

/** The tag or digest to ask the manifests endpoint for; the digest wins. */
export function manifestIdentifier(ref: Reference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** Whether a registry host is on this machine (127.0.0.0/8, localhost, ::1). */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(1, registry.indexOf(']')) : registry.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
