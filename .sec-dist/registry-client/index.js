/**
 * registry-client: an OCI distribution client (pull, push, auth, retries).
 * Everything other folders may use is exported here.
 */
export { RegistryClient } from './client.js';
export { parseReference, formatReference, familiarReference, registryHost, isLoopbackRegistry, withDigest, withTag, InvalidReferenceError, DOCKER_HUB, DOCKER_HUB_HOST, } from './reference.js';
export { RegistryError, InvalidOptionError, InvalidDocumentError, redactUrl } from './errors.js';
export { DockerConfigCredentials, staticCredentials, dockerConfigPath, CredentialError, } from './credentials.js';
export { login, logout, normalizeRegistry } from './login.js';
export { parseWwwAuthenticate } from './auth.js';
//# sourceMappingURL=index.js.map