/**
 * Retention of the service store: contexts and full step logs unused for
 * longer than `keepDurationMs` are deleted, except what a live build may still
 * read. What that is, the store does not know: the service's build records
 * say, read fresh for each pass through `BlobReferences` (the API's reading of
 * its Redis records: api/store-references.ts).
 *
 * Safety against a re-use racing a pass: references are read first, then
 * candidates are listed by last use, and each delete re-checks the last use
 * (see ServiceStore.removeIfUnused). A Submit touches the context before it
 * writes the build record, so a context named after the reference read is
 * fresh and survives. If the references cannot be read, nothing is deleted.
 */
import type { Digest } from '../core/digest.js';
import type { ServiceStore, StoredKind } from './service-store.js';

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
  /** What `BlobReferences.pruneExpired` dropped before the references were read (build ids whose record expired). */
  readonly expiredBuildIds: number;
  /** Old enough, kept because a live build or a build record references it. */
  readonly keptReferenced: number;
  /** Deletes that failed (retried next pass). */
  readonly errors: number;
}

/** What the service still references; read at the start of every pass. */
export interface BlobReferences {
  /**
   * Forgets references that have expired, so their blobs stop counting;
   * how many. Runs first in a pass (the API drops build ids whose record
   * expired from its build lists here).
   */
  pruneExpired(): Promise<number>;
  /** Blobs a live build or a kept record still names. Throws when they cannot be read: then nothing is deleted. */
  read(): Promise<Record<StoredKind, Set<Digest>>>;
}

/** One retention pass over both kinds. Throws (deleting nothing) when the references cannot be read. */
export async function sweepServiceStore(
  store: ServiceStore,
  references: BlobReferences,
  policy: RetentionPolicy,
  opts: { readonly now?: number; readonly signal?: AbortSignal; readonly onError?: (kind: StoredKind, digest: Digest, err: unknown) => void } = {},
): Promise<RetentionReport> {
  const expiredBuildIds = await references.pruneExpired();
  const refs = await references.read();
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
  references: BlobReferences,
  policy: RetentionPolicy,
  report: (r: RetentionReport | undefined, err?: unknown) => void,
): StoreRetention {
  const ac = new AbortController();
  let chain: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const pass = (now?: number): Promise<RetentionReport> => {
    const p = chain.then(() => sweepServiceStore(store, references, policy, { signal: ac.signal, ...(now !== undefined ? { now } : {}) }));
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
