import { readdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { mountsUnder, unmountAt } from '../core/mounter.js';
import { LocalContentStore } from '../cache/index.js';
import { RuncExecutor, type StepLimits } from './executor/index.js';
import { registerRootUse, type RootUse } from './root-users.js';
import { OverlaySnapshotter } from './snapshot/index.js';
import { SweepState } from './sweep-state.js';

/** The parts of a state root that processes leave things in; Builder.open runs on the same ones. */
export interface RootParts {
  readonly executor: RuncExecutor;
  readonly snapshotter: OverlaySnapshotter;
  readonly store: LocalContentStore;
  /** Where steps mount their root filesystems and views (`m-*`, `mnt-*`). */
  readonly tmpDir: string;
}

export function rootParts(
  root: string,
  exec: { readonly limits?: Partial<StepLimits>; readonly allowHostNetwork?: boolean; readonly allowSecurityInsecure?: boolean; readonly noNewPrivileges?: boolean } = {},
): RootParts {
  return {
    store: new LocalContentStore(path.join(root, 'content')),
    snapshotter: new OverlaySnapshotter(path.join(root, 'snapshots')),
    executor: new RuncExecutor({
      stateDir: path.join(root, 'exec'),
      ...(exec.limits ? { limits: exec.limits } : {}),
      allowHostNetwork: exec.allowHostNetwork ?? false,
      allowSecurityInsecure: exec.allowSecurityInsecure ?? false,
      noNewPrivileges: exec.noNewPrivileges ?? false,
    }),
    tmpDir: path.join(root, 'tmp'),
  };
}

export interface ReclaimReport {
  /** Live processes other than this one using the root when it came. */
  readonly otherUsers: number;
  /** Users that were dying (SIGKILL pending, exiting) when it came, waited for before sweeping. */
  readonly waitedFor: number;
  /**
   * Everything dead processes left was swept: this process is the root's only
   * live user. Otherwise only the steps of dead processes were (their mounts
   * and snapshots wait for a sole user: they cannot be told from a live build's).
   */
  readonly full: boolean;
  /** The snapshot records were read (sweep-state.ts: after a death, a reboot, or when asked). */
  readonly snapshotSweep: boolean;
  /** Containers killed and deleted, with every process in them. */
  readonly containers: number;
  /** Cgroups runc had lost track of, emptied and removed. */
  readonly cgroups: number;
  readonly mounts: number;
  readonly snapshots: number;
}

export interface RootClaim {
  readonly use: RootUse;
  readonly report: ReclaimReport;
}

export interface ClaimOptions {
  /**
   * `due` (builds): the snapshot sweep, which reads every record, runs only
   * when sweep-state.ts says something may be left; `always` (du, prune).
   */
  readonly snapshotSweep?: 'due' | 'always';
}

/** Names of the mount-point directories steps make under tmp/ (snapshot-step's `m-`, materialize's `mnt-`). */
const MOUNT_DIR = /^(?:m|mnt)-/;

/**
 * Register as a user of the root, then reclaim what dead processes left (docs/security.md T12):
 * always their steps (the containers with every process in them, cgroups,
 * bundles), and as the sole live user also the step mounts under tmp/
 * (unmounted before anything is removed, mount points removed with rmdir
 * only, so nothing can reach into a snapshot), active snapshots and
 * half-written ingests. The snapshots are swept when it is due
 * (sweep-state.ts) or asked for, since that pass reads every record. Call
 * before running anything on the root.
 */
export async function claimRoot(root: string, parts: RootParts, opts: ClaimOptions = {}): Promise<RootClaim> {
  const state = new SweepState(root);
  const use = await registerRootUse(root, { beforeForget: (why) => state.markDue(why) });
  try {
    return { use, report: await reclaim(parts, use, state, opts.snapshotSweep ?? 'due') };
  } catch (err) {
    await use.release();
    throw err;
  }
}

async function reclaim(parts: RootParts, use: RootUse, state: SweepState, when: 'due' | 'always'): Promise<ReclaimReport> {
  const full = use.others === 0;
  let snapshotSweep = false;
  let mounts = 0;
  let snapshots = 0;
  const { boot } = parts.snapshotter;
  // Ingest temp files and the sweep's marks have nothing to do with steps: read at the same time.
  // The steps' own order stays: containers go before their mounts, and mounts before snapshots.
  const [steps, check] = await Promise.all([
    parts.executor.sweep({ ownerless: full }),
    full ? state.check(boot) : undefined,
    full ? parts.store.sweepIngests() : undefined,
  ]);
  if (full) {
    for (const m of await mountsUnder(parts.tmpDir)) {
      await unmountAt(m);
      mounts++;
    }
    for (const name of await readdir(parts.tmpDir).catch(() => [] as string[])) {
      if (MOUNT_DIR.test(name)) await rmdir(path.join(parts.tmpDir, name)).catch(() => undefined);
    }
    if (check && (check.due || when === 'always')) {
      const snap = await parts.snapshotter.sweep();
      mounts += snap.unmounted.length;
      snapshots = snap.removed.length + snap.lost.length;
      await state.done(boot, check.marks);
      snapshotSweep = true;
    }
  }
  return {
    otherUsers: use.others,
    waitedFor: use.waitedFor,
    full,
    snapshotSweep,
    containers: steps.containers.length,
    cgroups: steps.cgroups.length,
    mounts,
    snapshots,
  };
}
