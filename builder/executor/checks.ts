import { checkLimits } from '../../core/limits.js';
import type { Mount } from '../../core/mount.js';
import { ExecutorOptionError } from './errors.js';
import type { ExecOptions, ProcessSpec, StepLimits } from './executor.js';

/** runc cannot start a container in a memory cgroup smaller than this. */
const MIN_MEMORY_BYTES = 4 * 1024 * 1024;

/** The step's share of a build's limits. */
export function stepLimitsOf(l: StepLimits): StepLimits {
  return { stepTimeoutMs: l.stepTimeoutMs, memoryBytes: l.memoryBytes, cpus: l.cpus, pids: l.pids };
}

/** `base` with each field of `over` that is set; a bad field is an ExecutorOptionError naming it. */
export function overStepLimits(base: StepLimits, over: Partial<StepLimits> | undefined, name: string): StepLimits {
  if (!over) return base;
  try {
    checkLimits(over, name);
  } catch (err) {
    throw new ExecutorOptionError(name, (err as Error).message);
  }
  if (over.memoryBytes !== undefined && over.memoryBytes < MIN_MEMORY_BYTES) {
    throw new ExecutorOptionError(`${name}.memoryBytes`, 'must be at least 4 MiB (runc cannot start below that)');
  }
  const out: Record<string, number> = { ...base };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) out[k] = v;
  return out as unknown as StepLimits;
}

/** What a step asks to run, checked before anything is set up. */
export function checkProcess(proc: ProcessSpec, opts: ExecOptions): void {
  if (proc.args.length === 0) throw new ExecutorOptionError('args', 'must not be empty');
  if (!proc.cwd.startsWith('/')) throw new ExecutorOptionError('cwd', 'must be absolute');
  if (opts.rootfs.length === 0) throw new ExecutorOptionError('rootfs', 'needs at least one mount');
  for (const m of opts.mounts ?? []) checkMount(m);
  for (const [k] of Object.entries(opts.secretEnv ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ExecutorOptionError('secretEnv', `bad variable name ${JSON.stringify(k)}`);
  }
}

function checkMount(m: Mount): void {
  if (m.target === undefined || !m.target.startsWith('/')) throw new ExecutorOptionError('mounts', `target of a ${m.type} mount must be absolute`);
  if (m.target.split('/').includes('..')) throw new ExecutorOptionError('mounts', `target ${m.target} must not contain ..`);
}
