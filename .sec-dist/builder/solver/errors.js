import { BuildliteError } from '../../core/errors.js';
/** A RUN step that did not succeed: exit code, signal, timeout or OOM, and its vertex. */
export class ExecError extends BuildliteError {
    vertex;
    command;
    result;
    code = 'EXEC_FAILED';
    constructor(vertex, command, result) {
        super(`process "${command}" ${ExecError.reason(result)}`);
        this.vertex = vertex;
        this.command = command;
        this.result = result;
    }
    static reason(r) {
        if (r.timedOut)
            return 'was killed: the step ran past its time limit';
        if (r.oomKilled)
            return 'was killed: out of memory (the step hit its memory limit)';
        if (r.signal)
            return `was killed by signal ${r.signal}`;
        return `did not complete successfully: exit code: ${r.exitCode}`;
    }
    details() {
        return { exitCode: this.result.exitCode, timedOut: this.result.timedOut, oomKilled: this.result.oomKilled, ...(this.result.signal ? { signal: this.result.signal } : {}) };
    }
}
//# sourceMappingURL=errors.js.map