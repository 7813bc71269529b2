import { chmod, chown, lstat, mkdir, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { makeSpreadDir } from '../core/spread-dir.js';
import { atomicWriteFile, isErrno } from '../core/fs-util.js';
import { SlotLocks } from './slot-lock.js';

export type CacheMountSharing = 'shared' | 'private' | 'locked';

export interface CacheMountOptions {
  /** Mode, owner and group of the directory when it is first created (BuildKit: 0755, 0, 0). */
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly signal?: AbortSignal;
  /** Fills a freshly created directory (`--mount=type=cache,from=...,source=...`); not called on reuse. */
  readonly seed?: (dir: string) => Promise<void>;
}

export interface CacheMountHandle {
  /** The host directory to bind into the container. */
  readonly dir: string;
  /** True when the directory was created for this use (empty or seeded). */
  readonly created: boolean;
  release(): Promise<void>;
}

/** One cache mount as `du` and GC see it. */
export interface CacheMountUsage {
  /** Internal id (hash of the user's id): what `remove()` takes. */
  readonly id: string;
  /** The id the Dockerfile gave, for display. */
  readonly name: string;
  readonly size: number;
  readonly lastUsedAt: number;
  readonly inUse: boolean;
}

interface Slot {
  users: number;
  readonly exclusive: boolean;
  /** The cross-process side: resolves true once other processes are kept out. */
  readonly ready: Promise<boolean>;
  /** Being handed back: nobody may join it until its markers are gone. */
  closing: boolean;
}

interface IdState {
  readonly slots: Map<number, Slot>;
  readonly waiters: Set<() => void>;
  readonly locks: SlotLocks;
  readonly lockDir: string;
}

/** How often a waiter looks again for a slot another process may have released. */
const CROSS_PROCESS_POLL_MS = 50;

/**
 * Persistent `RUN --mount=type=cache` directories, one set per cache id:
 *
 *   <root>/<sha256(id)>/meta.json    the id and when it was last used
 *   <root>/<sha256(id)>/data/<n>     directory n; 0 is the one `shared` and `locked` use
 *
 * - shared: everyone gets data/0 at once;
 * - private: each concurrent user gets a directory nobody else holds (data/0 when free,
 *   else the first free data/n, created on demand); later users reuse them;
 * - locked: data/0, exclusively; others wait (abortable).
 * Ids are untrusted strings and only ever hashed into names. Sharing modes hold
 * within this process: one CacheMounts per state root per process.
 */
export class CacheMounts {
  private readonly ids = new Map<string, IdState>();
  private spread?: Promise<void>;

  constructor(readonly root: string) {}

  async acquire(id: string, sharing: CacheMountSharing, opts: CacheMountOptions = {}): Promise<CacheMountHandle> {
    if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') {
      throw new CodedError('INVALID_ARGUMENT', `cache mount sharing must be shared, private or locked, got ${String(sharing)}`);
    }
    const hex = sha256(id).slice('sha256:'.length);
    const state = this.stateOf(hex);
    const index = await this.claim(state, sharing, opts.signal);
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await this.unclaim(state, index);
      if (state.slots.size === 0 && state.waiters.size === 0 && this.ids.get(hex) === state) this.ids.delete(hex);
      await this.writeMeta(hex, id).catch(() => undefined);
    };
    try {
      const dir = join(this.root, hex, 'data', String(index));
      const created = await this.ensureDir(hex, dir, opts);
      await this.writeMeta(hex, id);
      return { dir, created, release };
    } catch (err) {
      await release();
      throw err;
    }
  }

  /** Cache mounts with size and last use, for `du` and GC. */
  async *list(): AsyncIterable<CacheMountUsage> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    for (const hex of names.sort()) {
      if (!/^[a-f0-9]{64}$/.test(hex)) continue;
      const meta = await this.readMeta(hex);
      const size = await treeSize(join(this.root, hex));
      yield { id: hex, name: meta?.id ?? hex, size, lastUsedAt: meta?.lastUsedAt ?? 0, inUse: this.ids.has(hex) };
    }
  }

  /** Deletes a cache mount's directories; refuses one in use (GC skips those). */
  async remove(id: string): Promise<void> {
    if (!/^[a-f0-9]{64}$/.test(id)) throw new CodedError('INVALID_ARGUMENT', 'not a cache mount id');
    if (this.ids.has(id)) throw new CodedError('STORE', `cache mount ${id} is in use`);
    await rm(join(this.root, id), { recursive: true, force: true });
  }

  private stateOf(hex: string): IdState {
    let s = this.ids.get(hex);
    if (!s) {
      const lockDir = join(this.root, hex, 'locks');
      s = { slots: new Map(), waiters: new Set(), locks: new SlotLocks(lockDir), lockDir };
      this.ids.set(hex, s);
    }
    return s;
  }

  /** Waits until the sharing mode allows a slot, here and in other processes, then takes it. */
  private async claim(state: IdState, sharing: CacheMountSharing, signal?: AbortSignal): Promise<number> {
    for (;;) {
      signal?.throwIfAborted();
      const skip = new Set<number>();
      for (let index = pick(state, sharing, skip); index !== undefined; index = pick(state, sharing, skip)) {
        if (await this.take(state, index, sharing)) return index;
        // Another process holds it: private users move on to another directory, the others wait.
        if (sharing !== 'private') break;
        skip.add(index);
      }
      await waitForChange(state, CROSS_PROCESS_POLL_MS, signal);
    }
  }

  private async take(state: IdState, index: number, sharing: CacheMountSharing): Promise<boolean> {
    let slot = state.slots.get(index);
    if (!slot) {
      const exclusive = sharing !== 'shared';
      const ready = mkdir(state.lockDir, { recursive: true, mode: 0o700 }).then(() =>
        exclusive ? state.locks.tryExclusive(index) : state.locks.tryShared(index),
      );
      slot = { users: 0, exclusive, ready, closing: false };
      state.slots.set(index, slot);
    }
    slot.users++;
    let ok = false;
    try {
      ok = await slot.ready;
    } finally {
      if (!ok) {
        slot.users--;
        // A slot that never got its cross-process side holds no marker: drop it at once.
        if (slot.users === 0 && state.slots.get(index) === slot) state.slots.delete(index);
        wakeAll(state);
      }
    }
    return ok;
  }

  private async unclaim(state: IdState, index: number): Promise<void> {
    const slot = state.slots.get(index);
    if (!slot) return;
    slot.users--;
    if (slot.users === 0) {
      slot.closing = true;
      try {
        await (slot.exclusive ? state.locks.releaseExclusive(index) : state.locks.releaseShared(index));
      } finally {
        state.slots.delete(index);
      }
    }
    wakeAll(state);
  }

  private async ensureDir(hex: string, dir: string, opts: CacheMountOptions): Promise<boolean> {
    // Made once per instance; a failed mkdir is tried again by the next caller.
    await (this.spread ??= makeSpreadDir(this.root).catch((err: unknown) => {
      this.spread = undefined;
      throw err;
    }));
    await mkdir(join(this.root, hex, 'data'), { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if (isErrno(err, 'EEXIST')) return false;
      throw err;
    }
    try {
      await opts.seed?.(dir);
      await chown(dir, opts.uid ?? 0, opts.gid ?? 0);
      // chmod after chown: chown may clear setuid/setgid bits a mode asked for.
      await chmod(dir, opts.mode ?? 0o755);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return true;
  }

  private async writeMeta(hex: string, id: string): Promise<void> {
    const path = join(this.root, hex, 'meta.json');
    await atomicWriteFile(path, JSON.stringify({ id, lastUsedAt: Date.now() }));
    const now = new Date();
    await utimes(join(this.root, hex), now, now).catch(() => undefined);
  }

  private async readMeta(hex: string): Promise<{ id: string; lastUsedAt: number } | undefined> {
    try {
      const v = JSON.parse(await readFile(join(this.root, hex, 'meta.json'), 'utf8')) as { id?: unknown; lastUsedAt?: unknown };
      if (typeof v.id === 'string' && typeof v.lastUsedAt === 'number') return { id: v.id, lastUsedAt: v.lastUsedAt };
    } catch {
      // fall through: a mount without readable meta is still listed, by its hash
    }
    const st = await stat(join(this.root, hex)).catch(() => undefined);
    return st ? { id: hex, lastUsedAt: st.mtimeMs } : undefined;
  }
}

function pick(state: IdState, sharing: CacheMountSharing, skip: ReadonlySet<number>): number | undefined {
  const first = state.slots.get(0);
  switch (sharing) {
    case 'shared':
      return first === undefined || (!first.exclusive && !first.closing) ? 0 : undefined;
    case 'locked':
      return first === undefined ? 0 : undefined;
    case 'private':
      for (let i = 0; ; i++) if (!state.slots.has(i) && !skip.has(i)) return i;
  }
}

function wakeAll(state: IdState): void {
  for (const wake of [...state.waiters]) wake();
}

/** Resolves on a release in this process, after `pollMs` (other processes), or rejects on abort. */
function waitForChange(state: IdState, pollMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      state.waiters.delete(wake);
      signal?.removeEventListener('abort', onAbort);
    };
    const wake = () => {
      done();
      resolve();
    };
    const onAbort = () => {
      done();
      reject(signal?.reason instanceof Error ? signal.reason : new CodedError('CANCELLED', 'cache mount wait aborted'));
    };
    const timer = setTimeout(wake, pollMs);
    state.waiters.add(wake);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Bytes on disk under a directory, without following symlinks. */
export async function treeSize(path: string): Promise<number> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 0;
    throw err;
  }
  let total = st.blocks * 512;
  if (st.isDirectory()) {
    const names = await readdir(path).catch(() => [] as string[]);
    for (const n of names) total += await treeSize(join(path, n));
  }
  return total;
}
