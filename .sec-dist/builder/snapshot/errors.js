import { BuildliteError } from '../../core/errors.js';
export class SnapshotNotFoundError extends BuildliteError {
    snapshot;
    code = 'NOT_FOUND';
    constructor(snapshot, what = 'snapshot') {
        super(`${what} ${JSON.stringify(snapshot)} does not exist`);
        this.snapshot = snapshot;
    }
    details() {
        return { snapshot: this.snapshot };
    }
}
/** A key or name is taken; for a commit that races another build of the same chain, the caller may drop its own. */
export class SnapshotExistsError extends BuildliteError {
    snapshot;
    code = 'INVALID_ARGUMENT';
    constructor(snapshot) {
        super(`snapshot ${JSON.stringify(snapshot)} already exists`);
        this.snapshot = snapshot;
    }
    details() {
        return { snapshot: this.snapshot };
    }
}
/** Wrong kind for the operation (an active snapshot as a parent, a committed one as a key), or still a parent. */
export class SnapshotStateError extends BuildliteError {
    code = 'INVALID_ARGUMENT';
}
export class SnapshotChainTooLongError extends BuildliteError {
    code = 'LIMIT_EXCEEDED';
}
//# sourceMappingURL=errors.js.map