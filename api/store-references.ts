/**
 * What the service store must keep, read from the build records in Redis
 * for store retention (store/retention.ts), which the API runs because it
 * owns the uploads. Referenced means:
 *
 * - a context (or a named context's) of a build that is queued or running (a waiting build's
 *   context must never disappear); the build record names it, older records
 *   only in their BullMQ job data;
 * - a step log listed in `<prefix>:logs:<build>`, which lives as long as the
 *   build record (so `buildlite logs` works for as long as the build is listed).
 *
 * The same pass drops expired builds from the build lists (pruneBuildIndex).
 */
import type { Redis } from 'ioredis';
import { isDigest, type Digest } from '../core/digest.js';
import type { BlobReferences, StoredKind } from '../store/index.js';
import { TERMINAL_STATES, isBuildState } from '../worker/build-states.js';
import type { Keys } from '../worker/redis-keys.js';

/** The build records of one key prefix, as retention's references. */
export function buildReferences(redis: Redis, keys: Keys): BlobReferences {
  return { pruneExpired: () => pruneBuildIndex(redis, keys), read: () => referencedBlobs(redis, keys) };
}

const BATCH = 500;

/** Contexts of queued or running builds, and step logs of every build record still in Redis. */
export async function referencedBlobs(redis: Redis, keys: Keys): Promise<Record<StoredKind, Set<Digest>>> {
  const contexts = new Set<Digest>();
  const logs = new Set<Digest>();
  const ids = await redis.zrange(keys.allBuilds, '0', '-1');
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const p = redis.pipeline();
    for (const id of batch) p.hmget(keys.build(id), 'state', 'context', 'queue', 'namedContexts').hvals(keys.logs(id));
    const res = await p.exec();
    if (!res) throw new Error('redis pipeline aborted');
    const legacy: Array<{ id: string; queue: string }> = [];
    batch.forEach((id, j) => {
      const [e1, rec] = res[2 * j]!;
      const [e2, vals] = res[2 * j + 1]!;
      if (e1 || e2) throw e1 ?? e2;
      const [state, context, queue, named] = rec as Array<string | null>;
      for (const v of vals as string[]) {
        const d = parseLogRef(v);
        if (d) logs.add(d);
      }
      if (!state || !isBuildState(state) || TERMINAL_STATES.has(state)) return;
      if (isDigest(context)) contexts.add(context);
      else if (queue) legacy.push({ id, queue });
      // Named contexts' directories (PutContext), by the same rule as the build context.
      for (const d of named?.split(' ') ?? []) if (isDigest(d)) contexts.add(d);
    });
    if (legacy.length > 0) {
      // Records written before the context field: the digest is in the job data. No job, no run, nothing to keep.
      const datas = await redis.pipeline(legacy.map((l) => ['hget', `${keys.bullPrefix}:${l.queue}:${l.id}`, 'data'])).exec();
      for (const [err, data] of datas ?? []) {
        if (err) throw err;
        const d = jobContext(data as string | null);
        if (d) contexts.add(d);
      }
    }
  }
  return { context: contexts, log: logs };
}

function parseLogRef(json: string): Digest | undefined {
  try {
    const d = (JSON.parse(json) as { digest?: unknown }).digest;
    return isDigest(d) ? d : undefined;
  } catch {
    return undefined;
  }
}

function jobContext(data: string | null): Digest | undefined {
  if (!data) return undefined;
  try {
    const d = (JSON.parse(data) as { request?: { context?: { digest?: unknown } } }).request?.context?.digest;
    return isDigest(d) ? d : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Drops from the build lists the ids whose record has expired (records expire
 * after a build ends; the sorted sets that list them do not). A record and its
 * list entries are written in one MULTI, so an id without a record is gone for
 * good. Per-client lists are found by SCAN; ZREM of a non-member is a no-op.
 */
export async function pruneBuildIndex(redis: Redis, keys: Keys): Promise<number> {
  const gone: string[] = [];
  const ids = await redis.zrange(keys.allBuilds, '0', '-1');
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const res = await redis.pipeline(batch.map((id) => ['exists', keys.build(id)])).exec();
    if (!res) throw new Error('redis pipeline aborted');
    batch.forEach((id, j) => {
      const [err, n] = res[j]!;
      if (err) throw err;
      if (n === 0) gone.push(id);
    });
  }
  if (gone.length === 0) return 0;
  const lists = [keys.allBuilds];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${keys.prefix.replace(/[*?[\]\\]/g, '\\$&')}:client:*:builds`, 'COUNT', 500);
    lists.push(...found);
    cursor = next;
  } while (cursor !== '0');
  for (const list of lists) {
    for (let i = 0; i < gone.length; i += BATCH) await redis.zrem(list, ...gone.slice(i, i + BATCH));
  }
  return gone.length;
}

