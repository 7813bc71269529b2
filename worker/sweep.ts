import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { mountsUnder } from '../core/mounter.js';
import { CONTEXT_DIR_PREFIX } from './context.js';
import { LOG_SPOOL_PREFIX } from './step-logs.js';

export interface SweepReport {
  readonly contextDirs: number;
}

/**
 * What a crashed worker left beyond what `Builder.open` sweeps (runc
 * containers, step mounts under tmp/, active snapshots, ingests, expired
 * leases): the build contexts it unpacked and the step logs it was spooling.
 * Runs before the worker takes any job, and only after a full sweep (no
 * other live process uses the root, so none of these is in use).
 */
export async function sweepWorkerState(root: string): Promise<SweepReport> {
  const tmp = path.join(root, 'tmp');
  // No mount is left under tmp/ once Builder.open swept, so removing context dirs cannot reach into one.
  if ((await mountsUnder(`${tmp}/`)).length > 0) return { contextDirs: 0 };
  let contextDirs = 0;
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    if (!name.startsWith(CONTEXT_DIR_PREFIX) && !name.startsWith(LOG_SPOOL_PREFIX)) continue;
    await rm(path.join(tmp, name), { recursive: true, force: true });
    contextDirs++;
  }
  return { contextDirs };
}
