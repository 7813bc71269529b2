/**
 * registry-client: an OCI distribution client (pull, push, auth, retries).
 * Everything other folders may use is exported here.
 */
export { RegistryClient, type RegistryClientOptions, type BlobHomes } from './client.js';
export {
  parseReference,
  formatReference,
  familiarReference,
  registryHost,
  isLoopbackRegistry,
  withDigest,
  withTag,
  InvalidReferenceError,
  DOCKER_HUB,
  DOCKER_HUB_HOST,
  type Reference,
} from './reference.js';
export { RegistryError, InvalidOptionError, InvalidDocumentError, redactUrl, type RegistryDiagnostic } from './errors.js';
export {
  DockerConfigCredentials,
  staticCredentials,
  dockerConfigPath,
  CredentialError,
  type Credential,
  type CredentialSource,
} from './credentials.js';
export { login, logout, normalizeRegistry, type LoginOptions } from './login.js';
export { parseWwwAuthenticate, type Challenge } from './auth.js';
export type { ResolvedImage, FetchedManifest, KnownDocuments, ProgressFn, PullOptions } from './pull.js';
export type { PushImageInput, PushOptions, BlobPushResult } from './push.js';
