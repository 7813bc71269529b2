import type { Digest } from '../../core/digest.js';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import { limitExceeded } from '../../core/limit-error.js';
import type { ExecResult } from '../executor/index.js';

type ExitInfo = Pick<ExecResult, 'exitCode' | 'signal' | 'timedOut' | 'oomKilled'>;

/** A RUN step that did not succeed on its own terms: its exit code or signal, and its vertex. */
export class ExecError extends BuildliteError {
  readonly code: ErrorCode = 'EXEC_FAILED';
  constructor(
    readonly vertex: Digest,
    readonly command: string,
    readonly result: ExitInfo,
  ) {
    super(`process "${command}" ${ExecError.reason(result)}`);
  }

  static reason(r: ExitInfo): string {
    if (r.signal) return `was killed by signal ${r.signal}`;
    return `did not complete successfully: exit code: ${r.exitCode}`;
  }

  override details() {
    return exitDetails(this.result);
  }
}

function exitDetails(r: ExitInfo): Record<string, string | number | boolean> {
  return { exitCode: r.exitCode, timedOut: r.timedOut, oomKilled: r.oomKilled, ...(r.signal ? { signal: r.signal } : {}) };
}

/**
 * How a RUN that did not succeed is reported. An operator limit that ended it
 * is LIMIT_EXCEEDED naming the limit (the stable code scripts and metrics key
 * on: the build hit a bound the operator set, not a bug in the Dockerfile),
 * with the exit details kept; otherwise EXEC_FAILED. A fork refused by the
 * pids limit counts only when the step then failed: a program that handled
 * it and succeeded did not hit the limit in any way that matters.
 */
export function stepFailure(vertex: Digest, command: string, r: ExecResult): BuildliteError {
  const details = exitDetails(r);
  if (r.timedOut) return limitExceeded('stepTimeoutMs', r.limits.stepTimeoutMs, 'RUN', ' (killed with every process it started)', { details });
  if (r.oomKilled) return limitExceeded('memoryBytes', r.limits.memoryBytes, 'RUN', ' (OOM-killed)', { details });
  if (r.pidsLimited) return limitExceeded('pids', r.limits.pids, 'RUN', ` (a new process was refused, then it ${ExecError.reason(r).replace('did not complete successfully: ', 'failed with ')})`, { details });
  return new ExecError(vertex, command, r);
}

/**
 * A layer that could not be unpacked into a snapshot: the extractor's reason
 * (path traversal, a digest mismatch, a limit, a full disk) with the layer's
 * digest. The step that needed the snapshot reports it; SolveRun.attribute
 * then names the base image the layer came from and points at its FROM line.
 */
export class LayerError extends BuildliteError {
  readonly code: ErrorCode;
  readonly reason: string;
  constructor(
    readonly layer: Digest,
    cause: unknown,
  ) {
    const reason = isFsError(cause) ? fsReason(cause) : cause instanceof Error ? cause.message : String(cause);
    super(`layer ${layer}: ${reason}`, { cause });
    this.reason = reason;
    this.code = cause instanceof BuildliteError ? cause.code : isFsError(cause) ? 'STORE' : 'INTERNAL';
  }

  private image: string | undefined;

  /** Names the base image the layer belongs to (called once, by the run that knows its FROM line). */
  fromImage(image: string): void {
    this.image = image;
    this.message = `base image ${image}: layer ${this.layer}: ${this.reason}`;
  }

  /** The cause's details (a limit's name and value among them), with the layer and its image. */
  override details() {
    const inner = this.cause instanceof BuildliteError ? this.cause.details() : {};
    return { ...inner, layer: this.layer, ...(this.image !== undefined ? { image: this.image } : {}) };
  }
}

/** An error of the filesystem (ENOSPC, EIO, EDQUOT, EROFS…), as Node raises them. */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test((err as NodeJS.ErrnoException).code!) && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/**
 * Says what was being done when the filesystem failed (`writing the layer of
 * this step: ENOSPC: no space left on device, write`), as a STORE error that
 * can carry the step's Dockerfile line; other errors pass through unchanged.
 */
export function fsErrorContext(doing: string): (err: unknown) => never {
  return (err) => {
    if (isFsError(err)) throw new FsError(`${doing}: ${fsReason(err)}`, err);
    throw err;
  };
}

/** A plain filesystem error that reached the step's level: a STORE error (which can carry the line); others unchanged. */
export function asStepError(err: unknown): unknown {
  return isFsError(err) ? new FsError(`filesystem error in this step: ${fsReason(err)}`, err) : err;
}

/** `ENOSPC: no space left on device, write`: Node's words without the host path it may add. */
export function fsReason(err: NodeJS.ErrnoException): string {
  const what = err.message.split(',')[0] ?? err.code ?? 'filesystem error';
  return err.syscall ? `${what} (${err.syscall})` : what;
}

class FsError extends BuildliteError {
  readonly code: ErrorCode = 'STORE';
  constructor(message: string, cause: NodeJS.ErrnoException) {
    super(message, { cause });
  }
  override details() {
    const c = this.cause as NodeJS.ErrnoException;
    return { errno: c.code ?? '', syscall: c.syscall ?? '' };
  }
}
