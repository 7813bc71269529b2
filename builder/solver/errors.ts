import type { Digest } from '../../core/digest.js';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';

/** A RUN step that did not succeed: exit code, signal, timeout or OOM, and its vertex. */
export class ExecError extends BuildliteError {
  readonly code: ErrorCode = 'EXEC_FAILED';
  constructor(
    readonly vertex: Digest,
    readonly command: string,
    readonly result: { exitCode: number; signal?: string; timedOut: boolean; oomKilled: boolean },
  ) {
    super(`process "${command}" ${ExecError.reason(result)}`);
  }

  static reason(r: { exitCode: number; signal?: string; timedOut: boolean; oomKilled: boolean }): string {
    if (r.timedOut) return 'was killed: the step ran past its time limit';
    if (r.oomKilled) return 'was killed: out of memory (the step hit its memory limit)';
    if (r.signal) return `was killed by signal ${r.signal}`;
    return `did not complete successfully: exit code: ${r.exitCode}`;
  }

  override details() {
    return { exitCode: this.result.exitCode, timedOut: this.result.timedOut, oomKilled: this.result.oomKilled, ...(this.result.signal ? { signal: this.result.signal } : {}) };
  }
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

  /** Names the base image the layer belongs to (called once, by the run that knows its FROM line). */
  fromImage(image: string): void {
    this.message = `base image ${image}: layer ${this.layer}: ${this.reason}`;
  }

  override details() {
    return { layer: this.layer };
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
