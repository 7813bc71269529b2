import { BuildliteError } from '../../core/errors.js';
/**
 * Anything wrong with a Dockerfile: syntax, a bad flag value, a stage that
 * does not exist. Inner helpers throw it without a range; the converter attaches
 * the instruction's range once (core/errors.ts `withLocation`).
 */
export class DockerfileError extends BuildliteError {
    code = 'DOCKERFILE';
    /** The bare reason, without the location prefix the message may gain. */
    reason;
    /** A "did you mean" hint, when one makes sense. */
    suggestion;
    constructor(reason, options) {
        super(reason, options);
        this.reason = reason;
        if (options?.suggestion)
            this.suggestion = options.suggestion;
    }
    details() {
        const d = {};
        if (this.range) {
            d.file = this.range.file;
            d.line = this.range.startLine;
            if (this.range.startColumn !== undefined)
                d.column = this.range.startColumn;
        }
        if (this.suggestion)
            d.suggestion = this.suggestion;
        return d;
    }
}
/** Lines of context printed around the failing instruction. */
const CONTEXT_LINES = 2;
/**
 * The error with a code excerpt, the failing lines marked, BuildKit style:
 *
 *     Dockerfile:3
 *     --------------------
 *        2 |     RUN echo fine
 *        3 | >>> FOOBAR hello
 *     --------------------
 *     ERROR: Dockerfile:3: unknown instruction: FOOBAR (did you mean ...?)
 */
export function formatDockerfileError(err, dockerfileText) {
    const message = err instanceof Error ? err.message : String(err);
    const range = err instanceof BuildliteError ? err.range : undefined;
    const hint = err instanceof DockerfileError && err.suggestion ? ` (did you mean ${err.suggestion}?)` : '';
    if (!range)
        return `ERROR: ${message}${hint}`;
    const lines = dockerfileText.split(/\r?\n/);
    const first = Math.max(1, range.startLine - CONTEXT_LINES);
    const last = Math.min(lines.length, range.endLine + CONTEXT_LINES);
    const width = String(last).length + 3;
    const bar = '-'.repeat(20);
    const out = [`${range.file}:${range.startLine}${range.endLine > range.startLine ? `-${range.endLine}` : ''}`, bar];
    for (let n = first; n <= last; n++) {
        const marked = n >= range.startLine && n <= range.endLine;
        out.push(`${String(n).padStart(width)} | ${marked ? '>>>' : '   '} ${lines[n - 1] ?? ''}`);
    }
    out.push(bar);
    out.push(`ERROR: ${range.file}:${range.startLine}: ${message}${hint}`);
    return out.join('\n');
}
/** The closest known word, for "did you mean" (Levenshtein distance at most 2). */
export function suggest(word, known) {
    const w = word.toUpperCase();
    let best;
    let bestDist = 3;
    for (const k of known) {
        const d = distance(w, k.toUpperCase());
        if (d < bestDist) {
            best = k;
            bestDist = d;
        }
    }
    return best;
}
function distance(a, b) {
    if (Math.abs(a.length - b.length) > 2)
        return 3;
    let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
        const cur = [i];
        for (let j = 1; j <= b.length; j++) {
            const cost = a[i - 1] === b[j - 1] ? 0 : 1;
            cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
        }
        prev = cur;
    }
    return prev[b.length] ?? 3;
}
//# sourceMappingURL=errors.js.map