import type { NetworkMode } from '../../core/build.js';
import type { BuildLimits } from '../../core/limits.js';
import type { Mount } from '../../core/mount.js';

/** The process of one step, as the Dockerfile meant it. */
export interface ProcessSpec {
  readonly args: readonly string[];
  readonly env: readonly string[];
  /** Absolute; created inside the rootfs when missing. */
  readonly cwd: string;
  /** As in USER: `name`, `uid`, `name:group`, `uid:gid`; resolved via the rootfs's /etc/passwd and /etc/group. */
  readonly user: string;
}

/** The limits of one step, in the build's vocabulary; defaults and reasons: BUILD_LIMIT_DEFAULTS (core/limits.ts). */
export type StepLimits = Pick<BuildLimits, 'stepTimeoutMs' | 'memoryBytes' | 'cpus' | 'pids'>;

export interface ExecOptions {
  /** How to mount the root filesystem (an overlay from the snapshotter). */
  readonly rootfs: readonly Mount[];
  /** Extra mounts, each with a `target` inside the container. */
  readonly mounts?: readonly Mount[];
  readonly network: NetworkMode;
  readonly hostname?: string;
  /** Over the executor's own limits, field by field. */
  readonly limits?: Partial<StepLimits>;
  /** no_new_privs for this step (default: the executor's). */
  readonly noNewPrivileges?: boolean;
  /** Secret files are mounted through `mounts`; env secrets come here and are never logged. */
  readonly secretEnv?: Readonly<Record<string, string>>;
  readonly onStdout?: (chunk: Buffer) => void;
  readonly onStderr?: (chunk: Buffer) => void;
  readonly signal?: AbortSignal;
}

export interface ExecResult {
  readonly exitCode: number;
  /** Set when the process died of a signal. */
  readonly signal?: string;
  /** Killed at the step timeout. */
  readonly timedOut: boolean;
  /** Killed by the kernel at the memory limit. */
  readonly oomKilled: boolean;
  /** The pids limit refused a fork or clone at least once during the step. */
  readonly pidsLimited: boolean;
  /** The limits the step ran under. */
  readonly limits: StepLimits;
  readonly durationMs: number;
}

/**
 * Runs one process in a sandbox and always releases what it set up (bundle,
 * mounts, container), on success, failure, timeout and abort. A non-zero exit
 * is a result, not an exception; setup failures throw SANDBOX errors and an
 * abort throws CANCELLED.
 */
export interface Executor {
  run(proc: ProcessSpec, opts: ExecOptions): Promise<ExecResult>;
}
