import type { Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { diskUsage, leaseNamesOf, type CacheParts, type UsageItem } from './usage.js';

export interface PruneOptions {
  /** Remove every cache record, snapshot and cache mount nothing holds. */
  readonly all?: boolean;
  /** Remove what has not been used for longer than this. */
  readonly keepDurationMs?: number;
  /** Then remove least recently used items until total usage (metadata included) is at most this. */
  readonly keepStorageBytes?: number;
  /** Only items it accepts may be removed (blobs that nothing references are garbage and always may). */
  readonly filter?: (item: UsageItem) => boolean;
  /** Extra resources to keep, as lease resources (digests, `snapshot:<id>`, `cache-mount:<id>`). */
  readonly protect?: Iterable<string>;
  /**
   * Blobs no record names yet but younger than this are kept: a running build
   * commits a layer a moment before it writes the record naming it. Default 10 min.
   */
  readonly unreferencedGraceMs?: number;
  readonly now?: number;
  readonly signal?: AbortSignal;
}

export interface PruneResult {
  readonly removed: readonly UsageItem[];
  readonly freedBytes: number;
  readonly usageBefore: number;
  readonly usageAfter: number;
  /** False when what is held (leases, running steps) alone exceeds `keepStorageBytes`. */
  readonly underBudget: boolean;
  /** Items that could not be removed (e.g. a snapshot that became busy), with the reason. */
  readonly failed: ReadonlyArray<{ readonly item: UsageItem; readonly reason: string }>;
}

/** What the service enforces continuously: a hard cap on disk, and optionally a maximum age. */
export interface GcPolicy {
  readonly keepStorageBytes: number;
  readonly keepDurationMs?: number;
}

const DEFAULT_GRACE_MS = 10 * 60_000;

/** Prunes of one store run one at a time in this process (the loop and a user's prune may meet). */
const running = new WeakMap<object, Promise<unknown>>();

/**
 * Mark and sweep. Marks: what unexpired leases and `protect` name, what running
 * steps use, and the layers of every cache record that stays. Sweeps: records,
 * snapshots and cache mounts the options select, then, LRU first, more of them
 * until usage is under `keepStorageBytes`; a blob goes when no remaining record
 * names it and nothing holds it.
 */
export async function prune(parts: CacheParts, opts: PruneOptions = {}): Promise<PruneResult> {
  const key = parts.index;
  const previous = running.get(key) ?? Promise.resolve();
  const mine = previous.catch(() => undefined).then(() => pruneNow(parts, opts));
  running.set(key, mine);
  try {
    return await mine;
  } finally {
    if (running.get(key) === mine) running.delete(key);
  }
}

async function pruneNow(parts: CacheParts, opts: PruneOptions): Promise<PruneResult> {
  if (opts.keepStorageBytes !== undefined && !(opts.keepStorageBytes >= 0)) {
    throw new CodedError('INVALID_ARGUMENT', `keep-storage must be a size in bytes, got ${opts.keepStorageBytes}`);
  }
  await parts.leases?.sweep();
  const now = opts.now ?? Date.now();
  const grace = opts.unreferencedGraceMs ?? DEFAULT_GRACE_MS;
  const usage = await diskUsage(parts, opts.protect ?? []);
  const accept = opts.filter ?? (() => true);

  const blobs = new Map<string, UsageItem>();
  for (const i of usage.items) if (i.kind === 'blob') blobs.set(i.id, i);
  // Reference counts of blobs from records that stay; leased records and their layers are marked for good.
  const refs = new Map<string, number>();
  for (const layers of usage.recordLayers.values()) for (const l of layers) refs.set(l.digest, (refs.get(l.digest) ?? 0) + 1);

  const removed: UsageItem[] = [];
  const gone = new Set<UsageItem>();
  const failed: Array<{ item: UsageItem; reason: string }> = [];
  let freed = 0;

  const removeItem = async (item: UsageItem): Promise<boolean> => {
    opts.signal?.throwIfAborted();
    // The listing's leases are those of its moment: a build that started since has leased what
    // it is about to use (its records, blobs and snapshots), so ask the leases again.
    if (parts.leases) {
      const held = await parts.leases.protectedResources();
      if (leaseNamesOf(item).some((r) => held.has(r))) return false;
    }
    try {
      switch (item.kind) {
        case 'blob':
          await parts.store.delete(item.id);
          break;
        case 'cache-record':
          await parts.index.delete(item.id);
          break;
        case 'snapshot':
          await parts.snapshots?.remove(item.id);
          break;
        case 'cache-mount':
          await parts.cacheMounts?.remove(item.id);
          break;
        default:
          return false;
      }
    } catch (err) {
      failed.push({ item, reason: err instanceof Error ? err.message : String(err) });
      return false;
    }
    removed.push(item);
    gone.add(item);
    freed += item.size;
    return true;
  };

  // A record's layers lose a reference; blobs nothing else names go with it (no grace: they were referenced).
  const removeRecord = async (item: Extract<UsageItem, { kind: 'cache-record' }>): Promise<void> => {
    if (!(await removeItem(item))) return;
    for (const l of usage.recordLayers.get(item.id) ?? []) {
      const n = (refs.get(l.digest) ?? 1) - 1;
      refs.set(l.digest, n);
      const blob = blobs.get(l.digest);
      if (n === 0 && blob && !blob.inUse && !gone.has(blob)) await removeItem(blob);
    }
  };

  const removeAny = (item: UsageItem) => (item.kind === 'cache-record' ? removeRecord(item) : removeItem(item).then(() => undefined));

  // Records naming a blob that is gone are misses forever (the solver checks); drop them.
  for (const item of usage.items) {
    if (item.kind !== 'cache-record' || item.inUse) continue;
    const layers = usage.recordLayers.get(item.id) ?? [];
    const missing = layers.filter((l) => !blobs.has(l.digest));
    // Re-check: a blob committed after the listing, with its record written just after, is not missing.
    if (missing.length > 0 && (await anyAbsent(parts, missing.map((l) => l.digest)))) await removeRecord(item);
  }

  const candidates = usage.items.filter(
    (i) => (i.kind === 'cache-record' || i.kind === 'snapshot' || i.kind === 'cache-mount') && !i.inUse && accept(i),
  );
  const selectAll = opts.all === true || (opts.filter !== undefined && opts.keepDurationMs === undefined && opts.keepStorageBytes === undefined);
  for (const item of candidates) {
    const old = opts.keepDurationMs !== undefined && now - item.lastUsedAt > opts.keepDurationMs;
    if (selectAll || old) await removeAny(item);
  }

  // Garbage: blobs no record names and nothing holds, once they are past the grace period.
  for (const blob of blobs.values()) {
    if (blob.inUse || (refs.get(blob.id) ?? 0) > 0 || gone.has(blob)) continue;
    if (now - blob.lastUsedAt < grace) continue;
    await removeItem(blob);
  }

  if (opts.keepStorageBytes !== undefined) {
    const budget = opts.keepStorageBytes;
    const lru = candidates.filter((i) => !gone.has(i)).sort((a, b) => a.lastUsedAt - b.lastUsedAt || a.id.localeCompare(b.id));
    for (const item of lru) {
      if (usage.total - freed <= budget) break;
      await removeAny(item);
    }
  }

  const usageAfter = usage.total - freed;
  await parts.index.sweepOrphanPreimages().catch(() => undefined);
  return {
    removed,
    freedBytes: freed,
    usageBefore: usage.total,
    usageAfter,
    underBudget: opts.keepStorageBytes === undefined || usageAfter <= opts.keepStorageBytes,
    failed,
  };
}

async function anyAbsent(parts: CacheParts, digests: readonly Digest[]): Promise<boolean> {
  for (const d of digests) if (!(await parts.store.stat(d))) return true;
  return false;
}

export interface GcLoop {
  /** Runs one pass now (after any running one) and returns its result. */
  runNow(): Promise<PruneResult>;
  /** Resolves once the signal aborted and the last pass finished. */
  readonly stopped: Promise<void>;
}

/**
 * Enforces a policy every `intervalMs` until `signal` aborts. A failed pass is
 * reported to `onResult` and the loop goes on: a full disk must not stop GC.
 */
export function startGcLoop(
  parts: CacheParts,
  policy: GcPolicy,
  intervalMs: number,
  signal: AbortSignal,
  onResult?: (result: PruneResult | undefined, err?: unknown) => void,
): GcLoop {
  const pass = async (): Promise<PruneResult> => {
    const result = await prune(parts, {
      keepStorageBytes: policy.keepStorageBytes,
      ...(policy.keepDurationMs !== undefined ? { keepDurationMs: policy.keepDurationMs } : {}),
    });
    onResult?.(result);
    return result;
  };
  const stopped = (async () => {
    while (!signal.aborted) {
      try {
        await pass();
      } catch (err) {
        onResult?.(undefined, err);
      }
      await sleep(intervalMs, signal);
    }
  })();
  return { runNow: pass, stopped };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref?.();
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
