import { BuildliteError, type ErrorCode } from '../../core/errors.js';

/** The sandbox could not be set up or torn down (runc, mounts, bundle). */
export class SandboxError extends BuildliteError {
  readonly code: ErrorCode = 'SANDBOX';
}

/** A run was aborted through its signal; everything it set up was released first. */
export class ExecCancelledError extends BuildliteError {
  readonly code: ErrorCode = 'CANCELLED';
}

/** The step asked for something the operator did not allow (e.g. network host). */
export class SandboxPermissionError extends BuildliteError {
  readonly code: ErrorCode = 'PERMISSION_DENIED';
}

/** An executor or run option with a bad value, named. */
export class ExecutorOptionError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_OPTION';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(`${option}: ${message}`);
  }
  override details() {
    return { option: this.option };
  }
}
