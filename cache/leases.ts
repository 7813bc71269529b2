import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { atomicWriteFile, isErrno, unlinkQuiet } from '../core/fs-util.js';
import { onceUntilDone } from '../core/retry-once.js';

/**
 * Leases (containerd's, small): a lease names resources a running build holds,
 * and GC never removes a resource any unexpired lease names. Resources are
 * strings: a blob digest or cache key as is, other things with a prefix
 * (`snapshotResource(id)`, `cacheMountResource(id)`).
 *
 * Leases live on disk so a prune in another process (the CLI, the API) sees
 * them, and they expire so a crashed worker's leases stop protecting anything
 * once their TTL runs out; a live holder renews with `extend()`.
 *
 *   const lease = await leases.acquire(`build-${id}`, [layer.digest], 10 * 60_000);
 *   try { ...; await lease.add([newBlob]); } finally { await lease.release(); }
 */
export interface LeaseInfo {
  readonly id: string;
  readonly resources: readonly string[];
  readonly expiresAt: number;
}

export interface Lease extends LeaseInfo {
  /** Adds resources to the lease (e.g. a blob just committed, before its cache record exists). */
  add(resources: readonly string[]): Promise<void>;
  /** Pushes the expiry to `ttlMs` from now. */
  extend(ttlMs: number): Promise<void>;
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function snapshotResource(id: string): string {
  return `snapshot:${id}`;
}

export function cacheMountResource(id: string): string {
  return `cache-mount:${id}`;
}

const MAX_LEASE_BYTES = 16 << 20;

export class LeaseManager {
  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes (or replaces) the lease `id`. */
  async acquire(id: string, resources: readonly string[], ttlMs: number): Promise<Lease> {
    if (!(ttlMs > 0)) throw new CodedError('INVALID_ARGUMENT', `lease TTL must be positive, got ${ttlMs}`);
    const info: LeaseInfo = { id, resources: [...new Set(resources)], expiresAt: this.now() + ttlMs };
    await this.write(info);
    return this.handle(info);
  }

  async release(id: string): Promise<void> {
    await unlinkQuiet(this.path(id));
  }

  /** Unexpired leases; expired ones are ignored (and removed by `sweep`). */
  async active(): Promise<LeaseInfo[]> {
    const now = this.now();
    return (await this.readAll()).filter((l) => l.expiresAt > now);
  }

  /** Every resource some unexpired lease protects. */
  async protectedResources(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const l of await this.active()) for (const r of l.resources) out.add(r);
    return out;
  }

  /** Removes expired leases; returns how many. */
  async sweep(): Promise<number> {
    const now = this.now();
    let removed = 0;
    for (const l of await this.readAll()) {
      if (l.expiresAt <= now) {
        await unlinkQuiet(this.path(l.id));
        removed++;
      }
    }
    return removed;
  }

  private handle(initial: LeaseInfo): Lease {
    let current = initial;
    let released = false;
    const mgr = this;
    // Writes are chained: two concurrent adds must not land out of order and drop the first's resources.
    let writing: Promise<void> = Promise.resolve();
    // The write that holds `current` (done, under way or failed): what an add of nothing new waits for.
    let holding: Promise<void> = Promise.resolve();
    const update = (next: LeaseInfo): Promise<void> => {
      if (released) return Promise.reject(new CodedError('STORE', `lease ${current.id} was released`));
      current = next;
      const run = writing.then(() => (released ? undefined : mgr.write(current)));
      writing = run.catch(() => undefined);
      holding = run;
      return run;
    };
    return {
      get id() {
        return current.id;
      },
      get resources() {
        return current.resources;
      },
      get expiresAt() {
        return current.expiresAt;
      },
      add: (resources) => {
        const merged = new Set([...current.resources, ...resources]);
        // A step's inputs are the step before's outputs, leased already: no rewrite of the same file per step.
        if (!released && merged.size === current.resources.length) return holding;
        return update({ ...current, resources: [...merged] });
      },
      extend: (ttlMs) => update({ ...current, expiresAt: mgr.now() + ttlMs }),
      release: async () => {
        if (released) return;
        released = true;
        await writing;
        await mgr.release(current.id);
      },
      [Symbol.asyncDispose]() {
        return this.release();
      },
    };
  }

  private async write(info: LeaseInfo): Promise<void> {
    await this.init();
    // No fsync: other processes see the rename at once, and after a crash the lease is moot (its holder is gone).
    await atomicWriteFile(this.path(info.id), JSON.stringify(info), 0o600, { durable: false });
  }

  private async readAll(): Promise<LeaseInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const out: LeaseInfo[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const lease = await readLease(join(this.dir, name));
      if (lease) out.push(lease);
    }
    return out;
  }

  /** Lease ids are caller strings; hash them so no id can name another path. */
  private path(id: string): string {
    return join(this.dir, `${sha256(id).slice('sha256:'.length)}.json`);
  }

  private readonly init = onceUntilDone(async () => {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  });
}

async function readLease(path: string): Promise<LeaseInfo | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  if (text.length > MAX_LEASE_BYTES) return undefined;
  try {
    const v = JSON.parse(text) as Partial<LeaseInfo>;
    if (typeof v.id !== 'string' || typeof v.expiresAt !== 'number' || !Array.isArray(v.resources)) return undefined;
    return { id: v.id, expiresAt: v.expiresAt, resources: v.resources.filter((r): r is string => typeof r === 'string') };
  } catch {
    // A half-written lease cannot exist (atomic writes); anything else unreadable protects nothing.
    return undefined;
  }
}
