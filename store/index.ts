export type { BlobUpload, ServiceStore, ServiceStoreOptions, StoredBlob, StoredKind, StoreUseIndex } from './service-store.js';
export { openServiceStore, isRegistryStoreSpec } from './open.js';
export { DirStore, storedFile } from './dir-store.js';
export { RegistryStore } from './registry-store.js';
export { RedisStoreIndex, type UseIndexKeys } from './use-index.js';
export {
  RETENTION_DEFAULTS,
  startStoreRetention,
  sweepServiceStore,
  type BlobReferences,
  type RetentionPolicy,
  type RetentionReport,
  type StoreRetention,
} from './retention.js';
