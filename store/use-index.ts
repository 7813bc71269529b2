import type { Redis } from 'ioredis';
import { isDigest, type Digest } from '../core/digest.js';
import type { StoredKind, StoreUseIndex } from './service-store.js';

/** Where the index lives: one sorted set per kind (the service's key layout, worker/redis-keys.ts, names them). */
export interface UseIndexKeys {
  storeUse(kind: StoredKind): string;
}

/** Page size of index scans: one round trip per this many candidates. */
const PAGE = 500;

/**
 * Last use of a registry store's blobs, one sorted set per kind (member: the
 * blob digest, score: epoch ms). Every process that stores or re-uses a blob
 * marks it, so the set outlives the build records that named it.
 */
export class RedisStoreIndex implements StoreUseIndex {
  constructor(
    private readonly redis: Redis,
    private readonly keys: UseIndexKeys,
  ) {}

  async mark(kind: StoredKind, digest: Digest, atMs: number): Promise<void> {
    await this.redis.zadd(this.keys.storeUse(kind), Math.floor(atMs), digest);
  }

  async lastUse(kind: StoredKind, digest: Digest): Promise<number | undefined> {
    const s = await this.redis.zscore(this.keys.storeUse(kind), digest);
    return s === null ? undefined : Number(s);
  }

  async *usedAtOrBefore(kind: StoredKind, cutoffMs: number): AsyncIterable<Digest> {
    // Read to the end before yielding: the caller removes members, which would shift later offsets.
    const all: Digest[] = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.redis.zrangebyscore(this.keys.storeUse(kind), '-inf', Math.floor(cutoffMs), 'LIMIT', offset, PAGE);
      for (const d of page) if (isDigest(d)) all.push(d);
      if (page.length < PAGE) break;
    }
    yield* all;
  }

  async forget(kind: StoredKind, digest: Digest): Promise<void> {
    await this.redis.zrem(this.keys.storeUse(kind), digest);
  }
}
