/**
 * Retention of the service store: contexts and full step logs unused for
 * longer than `keepDurationMs` are deleted, except what a live build may still
 * read. Referenced means:
 *
 * - a context (or a named context's) of a build that is queued or running (a waiting build's
 *   context must never disappear); the build record names it, older records
 *   only in their BullMQ job data;
 * - a step log listed in `<prefix>:logs:<build>`, which lives as long as the
 *   build record (so `buildlite logs` works for as long as the build is listed).
 *
 * Safety against a re-use racing a pass: references are read first, then
 * candidates are listed by last use, and each delete re-checks the last use
 * (see ServiceStore.removeIfUnused). A Submit touches the context before it
 * writes the build record, so a context named after the reference read is
 * fresh and survives. If the references cannot be read, nothing is deleted.
 *
 * The same pass drops expired builds from the build lists (pruneBuildIndex).
 */
import type { Redis } from 'ioredis';
import type { Digest } from '../core/digest.js';
import type { ServiceStore, StoredKind } from './service-store.js';
import { TERMINAL_STATES, isBuildState } from './build-states.js';
import type { Keys } from './keys.js';

export interface RetentionPolicy {
  /** Blobs unused for longer than this are deleted (unless referenced). */
  readonly keepDurationMs: number;
  /** Time between passes; 0 runs passes only through `runNow` (tests, embedding). */
  readonly intervalMs?: number;
}

export const RETENTION_DEFAULTS = {
  keepDurationMs: 7 * 24 * 3600_000,
  // Hourly: the store overshoots by at most an hour of uploads; a pass is one scan of the build index.
  intervalMs: 3600_000,
  // Shorter would race an upload between its commit and its build record being written.
  minKeepDurationMs: 10 * 60_000,
  // A restart must not postpone retention by a whole interval: the first pass comes soon after start.
  firstPassDelayMs: 60_000,
} as const;

export interface RetentionReport {
  readonly removed: Record<StoredKind, number>;
  /** Ids dropped from the build lists (`<prefix>:builds`, per client) because their record expired. */
  readonly expiredBuildIds: number;
  /** Old enough, kept because a live build or a build record references it. */
  readonly keptReferenced: number;
  /** Deletes that failed (retried next pass). */
  readonly errors: number;
}

const BATCH = 500;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

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
      if (context && DIGEST.test(context)) contexts.add(context as Digest);
      else if (queue) legacy.push({ id, queue });
      // Named contexts' directories (PutContext), by the same rule as the build context.
      for (const d of named?.split(' ') ?? []) if (DIGEST.test(d)) contexts.add(d as Digest);
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
    return typeof d === 'string' && DIGEST.test(d) ? (d as Digest) : undefined;
  } catch {
    return undefined;
  }
}

function jobContext(data: string | null): Digest | undefined {
  if (!data) return undefined;
  try {
    const d = (JSON.parse(data) as { request?: { context?: { digest?: unknown } } }).request?.context?.digest;
    return typeof d === 'string' && DIGEST.test(d) ? (d as Digest) : undefined;
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

/** One retention pass over both kinds. Throws (deleting nothing) when Redis cannot be read. */
export async function sweepServiceStore(
  store: ServiceStore,
  redis: Redis,
  keys: Keys,
  policy: RetentionPolicy,
  opts: { readonly now?: number; readonly signal?: AbortSignal; readonly onError?: (kind: StoredKind, digest: Digest, err: unknown) => void } = {},
): Promise<RetentionReport> {
  const expiredBuildIds = await pruneBuildIndex(redis, keys);
  const refs = await referencedBlobs(redis, keys);
  const cutoff = (opts.now ?? Date.now()) - policy.keepDurationMs;
  const removed: Record<StoredKind, number> = { context: 0, log: 0 };
  let keptReferenced = 0;
  let errors = 0;
  for (const kind of ['context', 'log'] as const) {
    for await (const digest of store.unusedSince(kind, cutoff, opts.signal)) {
      opts.signal?.throwIfAborted();
      if (refs[kind].has(digest)) {
        keptReferenced++;
        continue;
      }
      try {
        if (await store.removeIfUnused(kind, digest, cutoff, opts.signal)) removed[kind]++;
      } catch (err) {
        errors++;
        opts.onError?.(kind, digest, err);
      }
    }
  }
  return { removed, expiredBuildIds, keptReferenced, errors };
}

export interface StoreRetention {
  /** Runs a pass now (after the one in progress, if any). */
  runNow(now?: number): Promise<RetentionReport>;
  stop(): Promise<void>;
}

/** Runs `sweepServiceStore` at start and every `intervalMs` until stopped; `report` sees each outcome. */
export function startStoreRetention(
  store: ServiceStore,
  redis: Redis,
  keys: Keys,
  policy: RetentionPolicy,
  report: (r: RetentionReport | undefined, err?: unknown) => void,
): StoreRetention {
  const ac = new AbortController();
  let chain: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const pass = (now?: number): Promise<RetentionReport> => {
    const p = chain.then(() => sweepServiceStore(store, redis, keys, policy, { signal: ac.signal, ...(now !== undefined ? { now } : {}) }));
    chain = p.then(
      (r) => report(r),
      (err: unknown) => {
        if (!ac.signal.aborted) report(undefined, err);
      },
    );
    return p;
  };
  const interval = policy.intervalMs ?? RETENTION_DEFAULTS.intervalMs;
  const schedule = (ms: number) => {
    timer = setTimeout(() => {
      void pass().catch(() => undefined);
      schedule(interval);
    }, ms);
    timer.unref();
  };
  if (interval > 0) schedule(Math.min(interval, RETENTION_DEFAULTS.firstPassDelayMs));
  return {
    runNow: pass,
    async stop() {
      ac.abort();
      if (timer) clearTimeout(timer);
      await chain.catch(() => undefined);
    },
  };
}
