import { existsSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { mountsUnder, unmountAt } from '../../core/mounter.js';
import { ownerLiveness } from '../../core/process-liveness.js';
import { removeCgroup } from './cgroups.js';
import { ownerOf } from './container-ids.js';
import { SandboxError } from './errors.js';
import type { RuncCli } from './runc-cli.js';

export interface StepSweepReport {
  /** Containers runc knew, force-deleted (with every process in them). */
  readonly containers: string[];
  /** Bundle directories removed (their mounts first). */
  readonly bundles: string[];
  /** Cgroups runc had lost track of, emptied and removed. */
  readonly cgroups: string[];
}

export interface StepSweepScope {
  /**
   * Also take steps whose id names no owner (made by an older version). Only
   * safe when no other live process uses the root; steps of a dead owner are
   * always taken, steps of a live one never.
   */
  readonly ownerless: boolean;
}

/**
 * What dead processes left in the executor's state: every id with a runc
 * state dir or a bundle dir (a bundle is made before `runc run` and removed
 * after `runc delete`, so it also names a container whose runc died before
 * saving its state), whose owner is not alive.
 */
export async function sweepDeadSteps(runc: RuncCli, bundlesDir: string, scope: StepSweepScope): Promise<StepSweepReport> {
  const inRoot = existsSync(runc.root) ? await readdir(runc.root) : [];
  const bundled = existsSync(bundlesDir) ? await readdir(bundlesDir) : [];
  const report = { containers: [] as string[], bundles: [] as string[], cgroups: [] as string[] };
  for (const id of new Set([...inRoot, ...bundled])) {
    const owner = ownerOf(id);
    if (owner === undefined ? !scope.ownerless : ownerLiveness(owner) === 'live') continue;
    if (inRoot.includes(id)) {
      await deleteContainer(runc, id);
      report.containers.push(id);
    }
    if (await removeCgroup(id)) report.cgroups.push(id);
    if (bundled.includes(id)) {
      await removeBundle(path.join(bundlesDir, id));
      report.bundles.push(id);
    }
  }
  return report;
}

/**
 * `runc delete --force`, and the cgroup as a fallback: when runc cannot
 * delete (a half-written state), the container's tasks are killed through
 * its cgroup, and the delete is tried again on the now dead container.
 */
async function deleteContainer(runc: RuncCli, id: string): Promise<void> {
  try {
    await runc.forceDelete(id);
  } catch {
    await removeCgroup(id);
    await runc.forceDelete(id);
  }
  // A state dir without a readable state is "not found" to runc, and stays: ours to remove.
  rmSync(path.join(runc.root, id), { recursive: true, force: true });
}

/** Unmount whatever is left under a bundle, then remove it, never deleting through a mount. */
export async function removeBundle(bundle: string): Promise<void> {
  for (const point of await mountsUnder(bundle)) await unmountAt(point);
  const left = await mountsUnder(bundle);
  if (left.length > 0) throw new SandboxError(`cannot remove ${bundle}: still mounted at ${left.join(', ')}`);
  // A handful of small files: removed in place.
  rmSync(bundle, { recursive: true, force: true });
}
