import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import path from 'node:path';
import { atomicWriteFile } from '../../core/fs-util.js';
import type { Mount } from '../../core/mount.js';
import { mountAt, mountsUnder, unmountAt } from '../../core/mounter.js';
import { onceUntilDone } from '../../core/retry-once.js';
import { makeSpreadDir } from '../../core/spread-dir.js';
import { runsRootless } from '../../core/userns.js';
import {
  SnapshotChainTooLongError,
  SnapshotExistsError,
  SnapshotNotFoundError,
  SnapshotStateError,
} from './errors.js';
import { BackgroundSync, currentBootId, mayBeLost, SyncedMarks, unsyncedNow } from './durability.js';
import { RecordStore, type SnapshotRecord } from './records.js';
import type { CommitOptions, SnapshotInfo, Snapshotter } from './snapshotter.js';
import { diskUsage } from './usage.js';

/**
 * The kernel copies mount options into one page: all of `lowerdir=...`,
 * `upperdir=` and `workdir=` must fit in 4096 bytes including the final NUL.
 * Ids are 8 characters, so each layer costs `len(root) + 22` bytes: a root
 * such as `/var/lib/buildlite` (18 bytes) allows about 100 layers, a root deep
 * in a temp dir fewer. Past the limit prepare/view fail with
 * SnapshotChainTooLongError rather than an obscure mount error. (Kernels with
 * the new mount API's `lowerdir+` lift this; mount(8) on Debian 12 lacks it.)
 */
export const MOUNT_OPTIONS_MAX = 4095;

export interface OverlayOptions {
  /**
   * Root only inside a user namespace (core/userns.ts; detected when omitted).
   * Overlay mounted there may not write `trusted.*` xattrs, so every mount
   * gets `userxattr`: opaque dirs are marked `user.overlay.opaque` (the
   * differ reads the name off the mount, layers/diff.ts). The two markings
   * cannot be mixed in one root, so the root records which it uses.
   */
  readonly rootless?: boolean;
  /**
   * Mount active snapshots with overlay's `volatile` (no sync of the upper
   * filesystem at unmount; durability.ts syncs in the background instead).
   * Default: as root on Linux 5.10 or newer. Rootless mounts keep the sync.
   */
  readonly volatile?: boolean;
  /** The boot this process runs in (durability.ts); tests pass another to act as a later boot. */
  readonly bootId?: string;
}

/** The file in a snapshot root naming its overlay xattr namespace. */
const XATTR_MODE_FILE = 'overlay-xattrs';

export interface SweepResult {
  readonly unmounted: string[];
  /** Active snapshots: no process owns them any more. */
  readonly removed: string[];
  /** Committed snapshots of an earlier boot that no sync covered, and those above them (durability.ts). */
  readonly lost: string[];
}

/**
 * Overlayfs snapshots. Layout under `root` (mode 0700, docs/security.md T11: images
 * carry setuid binaries):
 *
 *   records/<sha256(name)>.json   one record per active or committed snapshot
 *   snapshots/<id>/fs             the snapshot's own layer (overlay upperdir while active)
 *   snapshots/<id>/work           overlay workdir, dropped on commit
 *   synced.json                   per boot, how far commits are known to be on disk (durability.ts)
 *
 * A commit only rewrites records: the directory `id` stays where it is, so
 * committing is cheap and never copies. One process owns a root; within it,
 * mutations are serialised so "is it a parent?" checks cannot race.
 */
export class OverlaySnapshotter implements Snapshotter {
  private readonly records: RecordStore;
  private readonly snapshotsDir: string;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly userxattr: boolean;
  private readonly volatile: boolean;
  /** The kernel's boot id (durability.ts), or the one a test gave. */
  readonly boot: string;
  private readonly marks: SyncedMarks;
  private readonly syncs: BackgroundSync;
  /**
   * Keys this process committed whose active record outlived the commit (its
   * delete failed), with the name committed: the two records share a
   * directory, which removing the key must then leave to the committed one.
   */
  private readonly halfCommitted = new Map<string, string>();

  constructor(
    readonly root: string,
    opts: OverlayOptions = {},
  ) {
    this.root = path.resolve(root);
    this.userxattr = opts.rootless ?? runsRootless();
    this.volatile = opts.volatile ?? (!this.userxattr && kernelAtLeast(5, 10));
    this.records = new RecordStore(path.join(this.root, 'records'));
    this.snapshotsDir = path.join(this.root, 'snapshots');
    this.boot = opts.bootId ?? currentBootId();
    this.marks = new SyncedMarks(path.join(this.root, 'synced.json'));
    this.syncs = new BackgroundSync(this.snapshotsDir, this.marks, this.boot);
  }

  async prepare(key: string, parent: string | null): Promise<Mount[]> {
    return this.exclusive(async () => {
      if (await this.records.get(key)) throw new SnapshotExistsError(key);
      const lowers = parent === null ? [] : await this.committedChain(parent);
      const id = await this.newSnapshotDir();
      const rec: SnapshotRecord = { name: key, id, parent, kind: 'active', createdAt: Date.now() };
      if (!(await this.records.create(rec))) {
        await rm(this.dirOf(id), { recursive: true, force: true });
        throw new SnapshotExistsError(key);
      }
      return this.activeMounts(id, lowers);
    });
  }

  async mounts(key: string): Promise<Mount[]> {
    const rec = await this.records.get(key);
    if (!rec) throw new SnapshotNotFoundError(key);
    if (rec.kind !== 'active') throw new SnapshotStateError(`snapshot ${JSON.stringify(key)} is committed, not active`);
    const lowers = rec.parent === null ? [] : await this.committedChain(rec.parent);
    // A volatile mount leaves a mark in its workdir that makes the kernel refuse any later
    // mount of it; in the boot that made it (active snapshots do not outlive a crash: sweep) it may go.
    if (this.volatile) await rm(path.join(this.dirOf(rec.id), 'work', 'work', 'incompat', 'volatile'), { recursive: true, force: true });
    return this.activeMounts(rec.id, lowers);
  }

  async view(name: string): Promise<Mount[]> {
    const chain = await this.committedChain(name);
    if (chain.length === 1) return [{ type: 'bind', source: this.fsOf(chain[0]!), options: ['rbind', 'ro'] }];
    const options = [...this.xattrOption(), 'ro', `lowerdir=${chain.map((id) => this.fsOf(id)).join(':')}`];
    checkOptionLength(options, name);
    return [{ type: 'overlay', source: 'overlay', options }];
  }

  async commit(name: string, key: string, opts: CommitOptions = {}): Promise<void> {
    await this.exclusive(async () => {
      const rec = await this.records.get(key);
      if (!rec) throw new SnapshotNotFoundError(key);
      if (rec.kind !== 'active') throw new SnapshotStateError(`snapshot ${JSON.stringify(key)} is already committed`);
      const committed: SnapshotRecord = {
        ...rec,
        name,
        kind: 'committed',
        createdAt: Date.now(),
        ...(opts.unpackedBytes !== undefined ? { unpackedBytes: opts.unpackedBytes } : {}),
        // Written after every file of the snapshot: the background sync below covers it.
        unsynced: unsyncedNow(this.boot),
      };
      if (!(await this.records.create(committed))) throw new SnapshotExistsError(name);
      // Between the create and the delete a crash leaves both records on one id; sweep() drops the active one.
      this.halfCommitted.set(key, name);
      await this.records.delete(key);
      this.halfCommitted.delete(key);
      await rm(path.join(this.dirOf(rec.id), 'work'), { recursive: true, force: true });
    });
    this.syncs.schedule();
  }

  /** Wait until every snapshot this process committed is on disk and recorded so (durability.ts); free when it committed none. */
  async flush(): Promise<void> {
    await this.syncs.settle();
  }

  async ownDir(name: string): Promise<string | undefined> {
    await this.init();
    const rec = await this.records.get(name);
    return rec?.kind === 'committed' ? this.fsOf(rec.id) : undefined;
  }

  async remove(keyOrName: string): Promise<void> {
    await this.exclusive(async () => {
      const rec = await this.records.get(keyOrName);
      if (!rec) throw new SnapshotNotFoundError(keyOrName);
      if (rec.kind === 'active') return this.removeActive(keyOrName, rec);
      const all = await this.records.links();
      const child = all.find((r) => r.parent === keyOrName);
      if (child) {
        throw new SnapshotStateError(
          `snapshot ${JSON.stringify(keyOrName)} is the parent of ${JSON.stringify(child.name)}; remove that first`,
        );
      }
      await this.records.delete(keyOrName);
      if (!all.some((r) => r.id === rec.id && r.name !== keyOrName)) {
        await rm(this.dirOf(rec.id), { recursive: true, force: true });
      }
    });
  }

  /**
   * A step's own snapshot, dropped after a failure or an empty diff: without
   * reading the other records (a store holds thousands, and this runs for
   * every step that changed nothing). Nothing is prepared on an active
   * snapshot, so it has no children. Its directory is its own: a fresh id
   * at prepare, shared only by the record its commit made, and only this
   * process can have committed it (the GC never takes an active snapshot,
   * and the sweep drops dead processes' records itself).
   */
  private async removeActive(key: string, rec: SnapshotRecord): Promise<void> {
    const committedAs = this.halfCommitted.get(key);
    await this.records.delete(key);
    this.halfCommitted.delete(key);
    if (committedAs !== undefined && (await this.records.get(committedAs))?.id === rec.id) return;
    await rm(this.dirOf(rec.id), { recursive: true, force: true });
  }

  /** Reads one record and makes nothing: a fully cached build asks this and never needs the root's set-up. */
  async stat(keyOrName: string): Promise<SnapshotInfo | undefined> {
    const rec = await this.records.get(keyOrName);
    return rec && toInfo(rec);
  }

  async *list(): AsyncIterable<SnapshotInfo> {
    await this.init();
    for (const rec of await this.records.all()) yield toInfo(rec);
  }

  /**
   * Disk use as du counts it. A committed snapshot never changes, so its
   * figure is measured once and kept beside its files (`usage.json`): every
   * GC pass of a worker and every `du` asks for all of them, and walking
   * every file of every snapshot each time made those passes as slow as the
   * store is large. An active one is walked each time.
   */
  async usage(keyOrName: string): Promise<{ size: number; inodes: number }> {
    const rec = await this.records.get(keyOrName);
    if (!rec) throw new SnapshotNotFoundError(keyOrName);
    if (rec.kind === 'active') return diskUsage(this.fsOf(rec.id));
    const file = path.join(this.dirOf(rec.id), 'usage.json');
    const kept = await readFile(file, 'utf8').then(parseUsage, () => undefined);
    if (kept) return kept;
    const measured = await diskUsage(this.fsOf(rec.id));
    // Not durable: lost in a crash, it is measured again. A snapshot removed meanwhile keeps nothing.
    await atomicWriteFile(file, JSON.stringify(measured), 0o600, { durable: false, createDir: false }).catch(() => undefined);
    return measured;
  }

  /**
   * Recovery after a crash (docs/security.md T12): unmounts everything under the root,
   * removes every active snapshot (no process owns them any more) and any
   * directory or temp file no record points to. Call before taking work.
   */
  async sweep(): Promise<SweepResult> {
    return this.exclusive(async () => {
      const unmounted: string[] = [];
      for (const point of await mountsUnder(this.root)) {
        await unmountAt(point);
        unmounted.push(point);
      }
      await this.records.sweepTemps();
      const removed: string[] = [];
      const all = await this.records.all();
      const lost = lostSnapshots(all, this.boot, this.marks.read());
      const committedIds = new Set(all.filter((r) => r.kind === 'committed' && !lost.has(r.name)).map((r) => r.id));
      for (const rec of all) {
        if (rec.kind !== 'active') continue;
        await this.records.delete(rec.name);
        removed.push(rec.name);
      }
      for (const name of lost) await this.records.delete(name);
      for (const id of await readdir(this.snapshotsDir)) {
        if (!committedIds.has(id)) await rm(this.dirOf(id), { recursive: true, force: true });
      }
      return { unmounted, removed, lost: [...lost] };
    });
  }

  /** Ids of `name` and its ancestors, top first: overlay's lowerdir order. */
  private async committedChain(name: string): Promise<string[]> {
    await this.init();
    const ids: string[] = [];
    const seen = new Set<string>();
    let current: string | null = name;
    while (current !== null) {
      if (seen.has(current)) throw new SnapshotStateError(`snapshot parent loop at ${JSON.stringify(current)}`);
      seen.add(current);
      const rec: SnapshotRecord | undefined = await this.records.get(current);
      if (!rec) throw new SnapshotNotFoundError(current, current === name ? 'snapshot' : 'parent snapshot');
      if (rec.kind !== 'committed') {
        throw new SnapshotStateError(`snapshot ${JSON.stringify(current)} is active; only committed snapshots are parents or views`);
      }
      ids.push(rec.id);
      current = rec.parent;
    }
    return ids;
  }

  private activeMounts(id: string, lowers: string[]): Mount[] {
    const dir = this.dirOf(id);
    // Overlay needs at least one lower dir; a base snapshot is a plain writable directory.
    if (lowers.length === 0) return [{ type: 'bind', source: path.join(dir, 'fs'), options: ['rbind', 'rw'] }];
    const options = [
      ...this.xattrOption(),
      ...(this.volatile ? ['volatile'] : []),
      `lowerdir=${lowers.map((l) => this.fsOf(l)).join(':')}`,
      `upperdir=${path.join(dir, 'fs')}`,
      `workdir=${path.join(dir, 'work')}`,
    ];
    checkOptionLength(options, id);
    return [{ type: 'overlay', source: 'overlay', options }];
  }

  private async newSnapshotDir(): Promise<string> {
    for (;;) {
      const id = randomBytes(5).readUIntBE(0, 5).toString(36).padStart(8, '0');
      try {
        await mkdir(this.dirOf(id), { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw err;
      }
      await mkdir(path.join(this.dirOf(id), 'fs'));
      // The fs dir becomes `/` of a base image: 0755 whatever the umask.
      await chmod(path.join(this.dirOf(id), 'fs'), 0o755);
      await mkdir(path.join(this.dirOf(id), 'work'), { mode: 0o700 });
      return id;
    }
  }

  private xattrOption(): string[] {
    return this.userxattr ? ['userxattr'] : [];
  }

  /** The first process on a root records its overlay xattrs; a later one with the other kind is refused before it mounts anything. */
  private async checkXattrMode(): Promise<void> {
    const mine = this.userxattr ? 'user' : 'trusted';
    const file = path.join(this.root, XATTR_MODE_FILE);
    const recorded = (await readFile(file, 'utf8').catch(() => undefined))?.trim();
    if (recorded === undefined) {
      await writeFile(file, `${mine}\n`, { mode: 0o600 });
      return;
    }
    if (recorded !== mine) {
      const made = recorded === 'user' ? 'a rootless builder' : 'a builder running as root';
      const now = this.userxattr ? 'this one runs rootless' : 'this one runs as root';
      throw new SnapshotStateError(`the snapshots in ${this.root} were made by ${made} (overlay ${recorded}.* xattrs) and ${now}: use another state root (--root)`);
    }
  }

  /**
   * Rootless: one throwaway overlay mount at start, so a kernel or filesystem
   * that refuses overlayfs in a user namespace (Linux before 5.11, an upper
   * dir on overlayfs) is one clear error before any build, not a failure of
   * its first step. There is no copying snapshotter to fall back on yet.
   */
  private async probeOverlay(): Promise<void> {
    const dir = path.join(this.root, `probe-${randomBytes(4).toString('hex')}`);
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => path.join(dir, d));
    try {
      for (const d of [lower!, upper!, work!, merged!]) await mkdir(d, { recursive: true, mode: 0o700 });
      try {
        await mountAt({ type: 'overlay', source: 'overlay', options: ['userxattr', `lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`] }, merged!);
      } catch (err) {
        throw new SnapshotStateError(
          `rootless: overlayfs cannot be mounted in this user namespace with its upper dir under ${this.root} (${(err as Error).message.split('\n')[0]}): ` +
            'rootless buildlite needs Linux 5.11 or newer and a state root on a filesystem such as ext4 or xfs (--root)',
          { cause: err },
        );
      }
      await unmountAt(merged!);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private dirOf(id: string): string {
    return path.join(this.snapshotsDir, id);
  }

  private fsOf(id: string): string {
    return path.join(this.snapshotsDir, id, 'fs');
  }

  private readonly init = onceUntilDone(async () => {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    // mkdir's mode is masked by umask and ignored for an existing dir.
    await chmod(this.root, 0o700);
    await this.checkXattrMode();
    if (this.userxattr) await this.probeOverlay();
    await this.records.init();
    await makeSpreadDir(this.snapshotsDir);
  });

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      await this.init();
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * Committed snapshots that may have lost files in a crash (durability.ts),
 * and every committed snapshot above one of them: a chain is only as whole
 * as its lowest layer.
 */
function lostSnapshots(all: readonly SnapshotRecord[], boot: string, synced: ReturnType<SyncedMarks['read']>): Set<string> {
  const committed = all.filter((r) => r.kind === 'committed');
  const lost = new Set(committed.filter((r) => mayBeLost(r.unsynced, boot, synced)).map((r) => r.name));
  for (let grew = lost.size > 0; grew; ) {
    grew = false;
    for (const r of committed) {
      if (!lost.has(r.name) && r.parent !== null && lost.has(r.parent)) {
        lost.add(r.name);
        grew = true;
      }
    }
  }
  return lost;
}

/** Whether the running kernel is at least `major.minor` (overlay's `volatile` came in 5.10). */
function kernelAtLeast(major: number, minor: number): boolean {
  const [ma, mi] = release().split('.').map((p) => Number.parseInt(p, 10));
  return ma! > major || (ma === major && mi! >= minor);
}

function checkOptionLength(options: string[], what: string): void {
  const len = options.join(',').length;
  if (len > MOUNT_OPTIONS_MAX) {
    throw new SnapshotChainTooLongError(
      `overlay mount options for ${JSON.stringify(what)} are ${len} bytes, over the kernel's ${MOUNT_OPTIONS_MAX}: ` +
        'the parent chain is too deep for this state root (use a shorter --root or fewer layers)',
    );
  }
}

function toInfo(rec: SnapshotRecord): SnapshotInfo {
  return { name: rec.name, parent: rec.parent, kind: rec.kind, createdAt: rec.createdAt, ...(rec.unpackedBytes !== undefined ? { unpackedBytes: rec.unpackedBytes } : {}) };
}

/** A kept usage figure, or undefined for one that is torn or not ours. */
function parseUsage(text: string): { size: number; inodes: number } | undefined {
  try {
    const u = JSON.parse(text) as { size?: unknown; inodes?: unknown };
    return Number.isSafeInteger(u.size) && Number.isSafeInteger(u.inodes) ? { size: u.size as number, inodes: u.inodes as number } : undefined;
  } catch {
    return undefined;
  }
}
