import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ownerTag, processLiveness, waitWhileDying } from '../core/process-liveness.js';

/**
 * Which live processes use a state root. A builder sweeps leftovers of a
 * crashed process (containers, mounts, active snapshots) only when it is the
 * root's sole live user: sweeping while another `buildlite build` runs on the
 * same root would kill that build's steps. Each use is a file
 * `procs/<pid>-<starttime>-<nonce>`: the start time tells a live process from
 * a recycled pid, the nonce tells two uses in one process apart.
 */
export interface RootUse extends AsyncDisposable {
  /** Other live processes using the root when this one registered. */
  readonly others: number;
  /** Users that were dying (SIGKILL pending, exiting) when this one registered, waited for. */
  readonly waitedFor: number;
  release(): Promise<void>;
}

export const ROOT_USE_DEFAULTS = {
  // A SIGKILLed process is normally gone in well under a second. One still
  // dying after this is stuck in the kernel with SIGKILL pending: it never runs
  // its own code again, so reclaiming what it held goes ahead rather than
  // waiting for it (or, worse, skipping the sweep).
  dyingWaitMs: 5_000,
} as const;

export interface RootUseOptions {
  readonly dyingWaitMs?: number;
  /**
   * Told, once, before the first registration of a dead or dying user is
   * forgotten: what that user left must be swept, and after this call the
   * registration no longer says so.
   */
  readonly beforeForget?: (why: string) => Promise<void>;
}

export async function registerRootUse(root: string, opts: RootUseOptions = {}): Promise<RootUse> {
  const dyingWaitMs = opts.dyingWaitMs ?? ROOT_USE_DEFAULTS.dyingWaitMs;
  const dir = path.join(root, 'procs');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const me = `${ownerTag()}-${randomBytes(4).toString('hex')}`;
  await writeFile(path.join(dir, me), '', { mode: 0o600 });
  let others = 0;
  const dying: Array<{ name: string; pid: number; start: string }> = [];
  let told = false;
  const forget = async (name: string, why: string) => {
    if (!told && opts.beforeForget) await opts.beforeForget(`${why}: ${name}`);
    told = true;
    await rm(path.join(dir, name), { force: true });
  };
  for (const name of await readdir(dir)) {
    if (name === me) continue;
    const [pid, start] = name.split('-');
    const state = pid && start ? processLiveness(Number(pid), start) : 'gone';
    if (state === 'live') others++;
    else if (state === 'dying') dying.push({ name, pid: Number(pid), start: start! });
    else await forget(name, 'user gone');
  }
  // Dying users are waited for together, against one deadline.
  const deadline = Date.now() + dyingWaitMs;
  for (const d of dying) {
    await waitWhileDying(d.pid, d.start, Math.max(0, deadline - Date.now()));
    await forget(d.name, 'user died');
  }
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await rm(path.join(dir, me), { force: true });
  };
  return { others, waitedFor: dying.length, release, [Symbol.asyncDispose]: release };
}
