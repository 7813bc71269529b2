import { readFile, readdir, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Which live processes use a state root. A builder sweeps leftovers of a
 * crashed process (containers, mounts, active snapshots) only when it is the
 * root's sole live user: sweeping while another `buildlite build` runs on the
 * same root would kill that build's steps. Each user is a file
 * `procs/<pid>-<starttime>`; the start time tells a live process from a
 * recycled pid.
 */
export interface RootUse extends AsyncDisposable {
  /** Other live processes using the root when this one registered. */
  readonly others: number;
  release(): Promise<void>;
}

export async function registerRootUse(root: string): Promise<RootUse> {
  const dir = path.join(root, 'procs');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const me = `${process.pid}-${await startTime(process.pid)}`;
  await writeFile(path.join(dir, me), '', { mode: 0o600 });
  let others = 0;
  for (const name of await readdir(dir)) {
    if (name === me) continue;
    const [pid, start] = name.split('-');
    if (pid && start && (await startTime(Number(pid))) === start) others++;
    else await rm(path.join(dir, name), { force: true });
  }
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await rm(path.join(dir, me), { force: true });
  };
  return { others, release, [Symbol.asyncDispose]: release };
}

/** Field 22 of /proc/PID/stat (clock ticks since boot), or '' when the process is gone. */
async function startTime(pid: number): Promise<string> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}
