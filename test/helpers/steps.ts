import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { mountsUnder } from '../../core/mounter.js';
import { stateOf } from './procs.js';

/**
 * What a RUN step is made of on the host, seen from outside buildlite: the
 * runc containers in a state root, the processes in a container's pid
 * namespace, its cgroup directories. Tests check that none is left.
 */
const sh = promisify(execFile);

export interface RuncContainer {
  readonly id: string;
  readonly pid: number;
  readonly status: string;
}

function runcArgs(root: string, ...args: string[]): string[] {
  return ['--root', path.join(root, 'exec', 'runc'), ...args];
}

/** runc containers in a state root's runc state dir (with their init's host pid and status). */
export async function containersIn(root: string): Promise<RuncContainer[]> {
  try {
    const { stdout } = await sh('runc', runcArgs(root, 'list', '--format', 'json'));
    return ((JSON.parse(stdout.trim() || 'null') as RuncContainer[] | null) ?? []).map(({ id, pid, status }) => ({ id, pid, status }));
  } catch {
    return [];
  }
}

/** Ids of the runc containers in a state root. */
export async function runcContainers(root: string): Promise<string[]> {
  return (await containersIn(root)).map((c) => c.id);
}

/** The pid namespace of a process (`pid:[inode]`), or undefined when it is gone. */
export function pidNamespaceOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/**
 * Host pids of the processes in a pid namespace that still run: a step's
 * processes, wherever they were reparented. A zombie is left out: it runs
 * nothing and holds nothing, and it waits for the parent it was reparented
 * to (the host's init once runc is gone), not for us.
 */
export function pidsInNamespace(ns: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (pidNamespaceOf(Number(name)) === ns && stateOf(Number(name)) !== 'Z') out.push(Number(name));
  }
  return out;
}

/** Cgroup directories of a container that still exist (every v1 hierarchy, or v2). */
export function cgroupDirsOf(id: string): string[] {
  const base = '/sys/fs/cgroup';
  const dirs = [path.join(base, 'buildlite', id), ...readdirSync(base).map((h) => path.join(base, h, 'buildlite', id))];
  return dirs.filter((d) => existsSync(d));
}

/** Children of `pid` whose command line contains `text` (the reaper a CLI started, say). */
export function childrenOf(pid: number, text: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text)) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Kills runc containers and unmounts what killed processes left, so temp dirs can go. */
export async function cleanupRoots(roots: string[]): Promise<void> {
  for (const root of roots) {
    for (const id of await runcContainers(root)) {
      await sh('runc', runcArgs(root, 'kill', id, 'KILL')).catch(() => undefined);
      await sh('runc', runcArgs(root, 'delete', '--force', id)).catch(() => undefined);
    }
    for (const m of (await mountsUnder(root)).reverse()) await sh('umount', ['-l', m]).catch(() => undefined);
  }
}

export interface ContainerWatch {
  /** Stops watching; resolves with the most containers seen at once and every id seen. */
  stop(): Promise<{ readonly most: number; readonly ids: ReadonlySet<string> }>;
}

/** Lists a root's runc containers over and over until stopped: did two ever run at once? */
export function watchContainers(root: string): ContainerWatch {
  let stopped = false;
  let most = 0;
  const ids = new Set<string>();
  const loop = (async () => {
    while (!stopped) {
      const now = await runcContainers(root);
      most = Math.max(most, now.length);
      for (const id of now) ids.add(id);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { most, ids };
    },
  };
}
