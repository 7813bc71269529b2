import { BuildliteError } from '../core/errors.js';
/** One line for an unexpected error; typed errors carry their own context, others their message. */
export function formatError(err) {
    if (err instanceof BuildliteError)
        return err.message;
    if (err instanceof Error)
        return process.env['BUILDLITE_DEBUG'] ? (err.stack ?? err.message) : err.message;
    return String(err);
}
//# sourceMappingURL=errors.js.map