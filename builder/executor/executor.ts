import type { NetworkMode } from '../../core/build.js';
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

/** Operator-set limits; the defaults live in spec.ts with their reasons. */
export interface SandboxLimits {
  readonly pids?: number;
  readonly memoryBytes?: number;
  readonly timeoutMs?: number;
  readonly noNewPrivileges?: boolean;
}

export interface ExecOptions {
  /** How to mount the root filesystem (an overlay from the snapshotter). */
  readonly rootfs: readonly Mount[];
  /** Extra mounts, each with a `target` inside the container. */
  readonly mounts?: readonly Mount[];
  readonly network: NetworkMode;
  readonly hostname?: string;
  readonly limits?: SandboxLimits;
  /** Secret files are mounted through `mounts`; env secrets come here and are never logged. */
  readonly secretEnv?: Readonly<Record<string, string>>;
  readonly onStdout?: (chunk: Buffer) => void;
  readonly onStderr?: (chunk: Buffer) => void;
  readonly signal?: AbortSignal;
  /** `insecure`: RUN --security=insecure, what insecure.ts lists; the operator must allow it. Absent: the sandbox. */
  readonly security?: 'insecure';
}

export interface ExecResult {
  readonly exitCode: number;
  /** Set when the process died of a signal. */
  readonly signal?: string;
  readonly timedOut: boolean;
  readonly oomKilled: boolean;
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
