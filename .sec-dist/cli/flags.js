import { parseArgs } from 'node:util';
import { UsageError } from './usage.js';
/** node:util parseArgs with our error shape: an unknown flag or a missing value is a usage error (exit 2). */
export function parseFlags(command, argv, options) {
    try {
        return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    }
    catch (err) {
        const msg = err.message.replace(/\. To specify a positional argument.*$/s, '');
        throw new UsageError(msg, command);
    }
}
/** `k=v,k2=v2` (the --output / --secret / --cache-* syntax) into a map; repeated keys are an error. */
export function parseKeyValues(command, flag, value) {
    const out = new Map();
    for (const part of value.split(',')) {
        if (part === '')
            continue;
        const eq = part.indexOf('=');
        const k = (eq < 0 ? part : part.slice(0, eq)).trim();
        const v = eq < 0 ? 'true' : part.slice(eq + 1);
        if (out.has(k))
            throw new UsageError(`${flag}: "${k}" given twice in "${value}"`, command);
        out.set(k, v);
    }
    return out;
}
export function defaultRoot() {
    if (process.env['BUILDLITE_ROOT'])
        return process.env['BUILDLITE_ROOT'];
    if (process.getuid?.() === 0)
        return '/var/lib/buildlite';
    const data = process.env['XDG_DATA_HOME'] ?? `${process.env['HOME'] ?? '.'}/.local/share`;
    return `${data}/buildlite`;
}
//# sourceMappingURL=flags.js.map