import type { Mount } from '../../core/mount.js';

/**
 * Snapshotter vocabulary (containerd's):
 * - an *active* snapshot, named by a `key`, is writable: `prepare(key, parent)`
 *   returns the mounts of a fresh upper layer on top of `parent`;
 * - a *committed* snapshot, named by a `name`, is read-only and may be a parent;
 *   `commit(name, key)` turns the active `key` into `name` (the key is gone after);
 * - active snapshots never become parents; committed ones never change.
 *
 *   const mounts = await snap.prepare('build-42', parentName);
 *   // mount, run a step or copy files, unmount
 *   await snap.commit(chainId, 'build-42');   // or snap.remove('build-42')
 *
 * Committed names are chain ids of the layers they hold (OCI's ChainID), so a
 * layer chain tells which snapshot holds its filesystem.
 */
export interface SnapshotInfo {
  readonly name: string;
  readonly parent: string | null;
  readonly kind: 'active' | 'committed';
  readonly createdAt: number;
  /**
   * Bytes of the snapshot's own layer as a tar (its unpacked size), when its
   * commit recorded it: the image limits add these up along a chain.
   */
  readonly unpackedBytes?: number;
}

export interface CommitOptions {
  /** The layer's unpacked size, kept in the committed snapshot's record. */
  readonly unpackedBytes?: number;
}

export interface Snapshotter {
  prepare(key: string, parent: string | null): Promise<Mount[]>;
  /** Read-only mounts of a committed snapshot (no upper dir). */
  view(name: string): Promise<Mount[]>;
  /** The mounts of an existing active snapshot. */
  mounts(key: string): Promise<Mount[]>;
  commit(name: string, key: string, opts?: CommitOptions): Promise<void>;
  remove(keyOrName: string): Promise<void>;
  stat(keyOrName: string): Promise<SnapshotInfo | undefined>;
  list(): AsyncIterable<SnapshotInfo>;
  /** Bytes used by the snapshot's own layer (not its parents). */
  usage(keyOrName: string): Promise<{ size: number; inodes: number }>;
  /**
   * The directory holding a committed snapshot's own layer (its upper dir as
   * it was committed), to read from; undefined when there is no such snapshot.
   * Its files never change: a reader must not write to them or through links to them.
   */
  ownDir?(name: string): Promise<string | undefined>;
  /** Wait until every snapshot committed so far is on disk (where commits do not wait for it themselves). */
  flush?(): Promise<void>;
}
