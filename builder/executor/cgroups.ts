import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { SandboxError } from './errors.js';

/**
 * The cgroups of our containers: `/buildlite/<id>` in the spec, which runc
 * makes in every v1 hierarchy (`/sys/fs/cgroup/<controller>/buildlite/<id>`)
 * or once under cgroup v2. `runc delete` removes them; these helpers read the
 * OOM counter of a kept container and remove a cgroup runc no longer knows
 * (its runc was killed between making the cgroup and saving its state).
 */
const CGROUP_FS = '/sys/fs/cgroup';
const CGROUP_PARENT = 'buildlite';

export const CGROUP_DEFAULTS = {
  // SIGKILLed tasks leave their cgroup as soon as they exit; a cgroup still
  // populated after this holds a task stuck in the kernel, and removal fails loudly.
  killWaitMs: 5_000,
  pollMs: 20,
} as const;

export function cgroupsPathOf(id: string): string {
  return `/${CGROUP_PARENT}/${id}`;
}

/** The directories of a container's cgroup that exist now. */
export function cgroupDirsOf(id: string): string[] {
  let hierarchies: string[];
  try {
    hierarchies = readdirSync(CGROUP_FS);
  } catch {
    return [];
  }
  const dirs = [path.join(CGROUP_FS, CGROUP_PARENT, id), ...hierarchies.map((h) => path.join(CGROUP_FS, h, CGROUP_PARENT, id))];
  return dirs.filter((d) => existsSync(d));
}

/** memory.oom_control (cgroup v1) or memory.events (v2) of the kept container's cgroup: the kernel OOM-killed a task. */
export function readOomKilled(id: string): Promise<boolean> {
  return counterAbove0(id, 'memory', ['memory.oom_control', 'memory.events'], /^oom_kill (\d+)$/m);
}

/** pids.events (v1 and v2) of the kept container's cgroup: the pids limit refused a fork at least once. */
export function readPidsLimited(id: string): Promise<boolean> {
  return counterAbove0(id, 'pids', ['pids.events'], /^max (\d+)$/m);
}

/** A counter in the first of `files` found in the container's v1 `controller` hierarchy or its v2 cgroup. */
async function counterAbove0(id: string, controller: string, files: readonly string[], re: RegExp): Promise<boolean> {
  const dirs = [`${CGROUP_FS}/${controller}/${CGROUP_PARENT}/${id}`, `${CGROUP_FS}/${CGROUP_PARENT}/${id}`];
  for (const dir of dirs) {
    for (const f of files) {
      const text = await readFile(path.join(dir, f), 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      const m = re.exec(text);
      return m !== null && Number(m[1]) > 0;
    }
  }
  return false;
}

/**
 * Kill every task left in a container's cgroup, then remove the cgroup in
 * each hierarchy. Returns whether there was one. A v1 freezer holds killed
 * tasks until thawed, so a frozen cgroup is thawed first.
 */
export async function removeCgroup(id: string, opts: { killWaitMs?: number } = {}): Promise<boolean> {
  const dirs = cgroupDirsOf(id);
  if (dirs.length === 0) return false;
  const deadline = Date.now() + (opts.killWaitMs ?? CGROUP_DEFAULTS.killWaitMs);
  for (;;) {
    const pids = tasksIn(dirs);
    if (pids.length === 0) break;
    if (Date.now() >= deadline) throw new SandboxError(`cgroup of container ${id} still holds processes ${pids.slice(0, 10).join(', ')} after SIGKILL`);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const d of dirs) thaw(d);
    await sleep(CGROUP_DEFAULTS.pollMs);
  }
  // An emptied cgroup can stay busy for a moment while its last tasks are released.
  for (const d of dirs) {
    for (;;) {
      try {
        await rmdir(d);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || Date.now() >= deadline) throw new SandboxError(`cannot remove cgroup ${d}: ${code ?? String(err)}`, { cause: err });
        await sleep(CGROUP_DEFAULTS.pollMs);
      }
    }
  }
  return true;
}

/** Pids in any of the cgroup's directories (every v1 hierarchy lists the same tasks; one may be gone already). */
function tasksIn(dirs: readonly string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    let text = '';
    try {
      text = readFileSync(path.join(d, 'cgroup.procs'), 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) if (line) pids.add(Number(line));
  }
  return [...pids];
}

function thaw(dir: string): void {
  const state = path.join(dir, 'freezer.state');
  if (!existsSync(state)) return;
  try {
    if (!readFileSync(state, 'utf8').startsWith('THAWED')) writeFileSync(state, 'THAWED');
  } catch {
    // removed meanwhile
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
