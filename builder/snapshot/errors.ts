import { BuildliteError, type ErrorCode } from '../../core/errors.js';

export class SnapshotNotFoundError extends BuildliteError {
  readonly code: ErrorCode = 'NOT_FOUND';
  constructor(readonly snapshot: string, what = 'snapshot') {
    super(`${what} ${JSON.stringify(snapshot)} does not exist`);
  }
  override details() {
    return { snapshot: this.snapshot };
  }
}

/** A key or name is taken; for a commit that races another build of the same chain, the caller may drop its own. */
export class SnapshotExistsError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
  constructor(readonly snapshot: string) {
    super(`snapshot ${JSON.stringify(snapshot)} already exists`);
  }
  override details() {
    return { snapshot: this.snapshot };
  }
}

/** Wrong kind for the operation (an active snapshot as a parent, a committed one as a key), or still a parent. */
export class SnapshotStateError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
}

export class SnapshotChainTooLongError extends BuildliteError {
  readonly code: ErrorCode = 'LIMIT_EXCEEDED';
}
