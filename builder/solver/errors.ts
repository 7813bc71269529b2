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
