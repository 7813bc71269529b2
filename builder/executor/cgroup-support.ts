import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { limitPhrase } from '../../core/limit-error.js';
import type { StepLimits } from './executor.js';

/**
 * What this host's cgroups can enforce on a step, found once when the
 * executor is made. runc puts each step in `/buildlite/<id>` (cgroups.ts): in
 * every v1 hierarchy, or once in the v2 unified tree. A limit with no
 * controller behind it is left out of the spec (runc would fail every step on
 * it) and reported at start by `unenforced`: never ignored in silence.
 */
export interface CgroupSupport {
  readonly version: 1 | 2;
  /** memory.limit_in_bytes (v1) or memory.max (v2). */
  readonly memory: boolean;
  /** Memory and swap bounded together: memory.memsw.* (v1, needs swap accounting) or memory.swap.max (v2). */
  readonly swap: boolean;
  /** The host has swap at all; without any, the memory limit alone bounds a step. */
  readonly hostSwap: boolean;
  /** A CFS quota: cpu.cfs_quota_us (v1) or cpu.max (v2). */
  readonly cpu: boolean;
  readonly pids: boolean;
  /** Why no controller is ours to use at all (a rootless builder without a delegated cgroup); said in each warning. */
  readonly unavailable?: string;
}

/** Where the facts are read; tests point it at a tree laid out like a host's. */
export interface CgroupHost {
  /** The cgroup mount, `/sys/fs/cgroup`. */
  readonly fsRoot: string;
  /** `/proc/self/cgroup`: our own v2 cgroup, whose files show what a non-root cgroup has. */
  readonly selfCgroup: string;
  readonly meminfo: string;
}

const HOST: CgroupHost = { fsRoot: '/sys/fs/cgroup', selfCgroup: '/proc/self/cgroup', meminfo: '/proc/meminfo' };

export function detectCgroups(host: CgroupHost = HOST): CgroupSupport {
  const hostSwap = /^SwapTotal:\s+[1-9]/m.test(readOr(host.meminfo));
  const at = (...p: string[]) => existsSync(path.join(host.fsRoot, ...p));
  // Unified mode has cgroup.controllers at the mount's root; a hybrid host's v2 tree
  // (at unified/) holds no controllers, and runc uses the v1 hierarchies there.
  if (at('cgroup.controllers')) {
    const controllers = new Set(readOr(path.join(host.fsRoot, 'cgroup.controllers')).split(/\s+/));
    const memory = controllers.has('memory');
    return { version: 2, memory, swap: memory && v2HasSwapFile(host), hostSwap, cpu: controllers.has('cpu'), pids: controllers.has('pids') };
  }
  return {
    version: 1,
    memory: at('memory', 'memory.limit_in_bytes'),
    swap: at('memory', 'memory.memsw.limit_in_bytes'),
    hostSwap,
    cpu: at('cpu', 'cpu.cfs_quota_us'),
    pids: at('pids', 'cgroup.procs'),
  };
}

/**
 * v2 shows memory.swap.max only in non-root cgroups, and only when the kernel
 * counts swap: look in our own cgroup, else in any child of the root.
 */
function v2HasSwapFile(host: CgroupHost): boolean {
  const own = /^0::(\/\S*)$/m.exec(readOr(host.selfCgroup))?.[1];
  const dirs = own && own !== '/' ? [path.join(host.fsRoot, own)] : [];
  try {
    for (const e of readdirSync(host.fsRoot, { withFileTypes: true })) if (e.isDirectory()) dirs.push(path.join(host.fsRoot, e.name));
  } catch {
    // no tree to look in
  }
  const probe = dirs.find((d) => existsSync(path.join(d, 'memory.max')));
  return probe !== undefined && existsSync(path.join(probe, 'memory.swap.max'));
}

/**
 * A rootless builder (core/userns.ts) may not make cgroups: the host's are
 * root's, and buildlite does not use a delegated cgroup v2 subtree (systemd's
 * `Delegate=`) yet. runc then runs with no cgroup of the step's own, so every
 * limit but the step timeout goes unenforced, and `unenforced` names each.
 */
export function rootlessCgroups(host: CgroupSupport): CgroupSupport {
  const why = host.version === 1 ? 'rootless on cgroup v1, which has no delegation to a user' : 'rootless, and buildlite does not use a delegated cgroup v2 subtree yet';
  return { version: host.version, memory: false, swap: false, hostSwap: host.hostSwap, cpu: false, pids: false, unavailable: why };
}

/** One line per limit this host cannot enforce as asked, naming it: for a warning at start. */
export function unenforced(support: CgroupSupport, limits: StepLimits): string[] {
  const v = `cgroup v${support.version}`;
  const out: string[] = [];
  if (support.unavailable !== undefined) {
    const why = support.unavailable;
    out.push(`memory: ${why}: steps run without ${limitPhrase('memoryBytes', limits.memoryBytes)}`);
    if (limits.cpus > 0) out.push(`cpus: ${why}: ${limitPhrase('cpus', limits.cpus)} is not enforced`);
    out.push(`pids: ${why}: ${limitPhrase('pids', limits.pids)} is only a per-uid RLIMIT_NPROC, shared by steps running at once`);
    return out;
  }
  if (!support.memory) out.push(`memory: ${v} has no memory controller: steps run without ${limitPhrase('memoryBytes', limits.memoryBytes)}`);
  else if (support.hostSwap && !support.swap) {
    const how = support.version === 1 ? 'no swap accounting (boot with swapaccount=1)' : 'no memory.swap.max';
    out.push(`memory: ${v} has ${how}: a step may use swap beyond ${limitPhrase('memoryBytes', limits.memoryBytes)}`);
  }
  if (limits.cpus > 0 && !support.cpu) out.push(`cpus: ${v} has no cpu controller: ${limitPhrase('cpus', limits.cpus)} is not enforced`);
  if (!support.pids) out.push(`pids: ${v} has no pids controller: ${limitPhrase('pids', limits.pids)} is not enforced (a fork bomb runs until the step timeout)`);
  return out;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
