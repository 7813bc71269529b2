import type { Mount } from '../../core/mount.js';
import { ExecutorOptionError } from './errors.js';
import type { ExecOptions, ProcessSpec, SandboxLimits } from './executor.js';

/** Operator limits overlaid with a step's; a bad field is an ExecutorOptionError naming it. */
export function mergeLimits(base: Required<SandboxLimits>, over: SandboxLimits | undefined, name: string): Required<SandboxLimits> {
  const out = { ...base };
  for (const key of ['pids', 'memoryBytes', 'timeoutMs'] as const) {
    const v = over?.[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v <= 0) throw new ExecutorOptionError(`${name}.${key}`, 'must be a positive integer');
    out[key] = v;
  }
  if (over?.memoryBytes !== undefined && over.memoryBytes < 4 * 1024 * 1024) {
    throw new ExecutorOptionError(`${name}.memoryBytes`, 'must be at least 4 MiB (runc cannot start below that)');
  }
  if (over?.noNewPrivileges !== undefined) out.noNewPrivileges = over.noNewPrivileges === true;
  return out;
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
