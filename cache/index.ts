export { LocalContentStore, READ_HIGH_WATER_MARK } from './local-store.js';
export { writeBlob, putJson, readJson, copyBlob, hasStat } from './blob-helpers.js';
export { CacheKeyIndex, type CacheRecord, type CacheRecordEntry, type LayerRef } from './key-index.js';
export { LeaseManager, snapshotResource, cacheMountResource, type Lease, type LeaseInfo } from './leases.js';
export {
  CacheMounts,
  type CacheMountSharing,
  type CacheMountOptions,
  type CacheMountHandle,
  type CacheMountUsage,
} from './cache-mounts.js';
export {
  diskUsage,
  totals,
  USAGE_KINDS,
  type UsageKind,
  type UsageItem,
  type PrunableSource,
  type UsageAwareStore,
  type CacheParts,
  type KindTotal,
  type DiskUsage,
} from './usage.js';
export { prune, startGcLoop, type PruneOptions, type PruneResult, type GcPolicy, type GcLoop } from './gc.js';
export { parsePruneFilters } from './units.js';
export { LazyBlobStore, type RemoteBlob } from './lazy-store.js';
export {
  importCache,
  exportCache,
  buildCacheManifest,
  parseCacheIndex,
  CacheTransferError,
  CACHE_INDEX_MEDIA_TYPE,
  CACHE_ARTIFACT_TYPE,
  type CacheIndexRecord,
  type CacheLocation,
  type ImportedCache,
} from './remote-cache.js';
export { snapshotSource, type SnapshotLister } from './snapshot-source.js';
export { explainMiss, formatExplanation, type MissExplanation, type PreimageDiff, type StoredPreimage } from './why-miss.js';
