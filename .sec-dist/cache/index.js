export { LocalContentStore, READ_HIGH_WATER_MARK } from './local-store.js';
export { writeBlob, putJson, readJson, copyBlob, hasStat } from './blob-helpers.js';
export { CacheKeyIndex } from './key-index.js';
export { LeaseManager, snapshotResource, cacheMountResource } from './leases.js';
export { CacheMounts, } from './cache-mounts.js';
export { diskUsage, totals, USAGE_KINDS, } from './usage.js';
export { prune, startGcLoop } from './gc.js';
export { parseBytes, parseDuration, parsePruneFilters } from './units.js';
export { LazyBlobStore } from './lazy-store.js';
export { importCache, exportCache, buildCacheManifest, parseCacheIndex, CacheTransferError, CACHE_INDEX_MEDIA_TYPE, CACHE_ARTIFACT_TYPE, } from './remote-cache.js';
export { snapshotSource } from './snapshot-source.js';
export { explainMiss, formatExplanation } from './why-miss.js';
//# sourceMappingURL=index.js.map