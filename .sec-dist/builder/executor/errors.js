import { BuildliteError } from '../../core/errors.js';
/** The sandbox could not be set up or torn down (runc, mounts, bundle). */
export class SandboxError extends BuildliteError {
    code = 'SANDBOX';
}
/** A run was aborted through its signal; everything it set up was released first. */
export class ExecCancelledError extends BuildliteError {
    code = 'CANCELLED';
}
/** The step asked for something the operator did not allow (e.g. network host). */
export class SandboxPermissionError extends BuildliteError {
    code = 'PERMISSION_DENIED';
}
/** An executor or run option with a bad value, named. */
export class ExecutorOptionError extends BuildliteError {
    option;
    code = 'INVALID_OPTION';
    constructor(option, message) {
        super(`${option}: ${message}`);
        this.option = option;
    }
    details() {
        return { option: this.option };
    }
}
//# sourceMappingURL=errors.js.map