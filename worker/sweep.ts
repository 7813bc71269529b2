import { readdir, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { mountsUnder, unmountAt } from '../core/mounter.js';
import { LeaseManager, LocalContentStore } from '../cache/index.js';
import { CONTEXT_DIR_PREFIX } from './context.js';

export interface SweepReport {
  readonly ingests: number;
  readonly leases: number;
  readonly contextDirs: number;
  readonly tmpMounts: number;
}

/**
 * What a crashed worker left that the builder's own sweep (runc containers,
 * mounts, active snapshots; run by `Builder.open`) does not cover: half-written
 * store ingests, expired leases, unpacked build contexts, and the snapshot
 * views a step mounts under `<root>/tmp/m-*` (Builder.open's sweep does not
 * look there, so a SIGKILL mid-step left them mounted). Runs before the
 * worker takes any job, so nothing here can belong to a live build of ours.
 */
export async function sweepWorkerState(root: string): Promise<SweepReport> {
  const ingests = await new LocalContentStore(path.join(root, 'content')).sweepIngests();
  const leases = await new LeaseManager(path.join(root, 'leases')).sweep();
  const tmp = path.join(root, 'tmp');
  // Deepest first (mountsUnder's order); unmount before any rm so no rm can reach into a mounted snapshot.
  const mounts = await mountsUnder(`${tmp}/`);
  for (const m of mounts) await unmountAt(m);
  let contextDirs = 0;
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    if (name.startsWith(CONTEXT_DIR_PREFIX)) {
      await rm(path.join(tmp, name), { recursive: true, force: true });
      contextDirs++;
    } else if (name.startsWith('m-')) {
      // Mount points are empty dirs once unmounted; rmdir (never rm -r) in case one is still busy.
      await rmdir(path.join(tmp, name)).catch(() => undefined);
    }
  }
  return { ingests, leases, contextDirs, tmpMounts: mounts.length };
}
