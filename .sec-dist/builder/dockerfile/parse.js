import { DockerfileParser } from 'dockerfile-ast';
import { withLocation } from '../../core/errors.js';
import { DockerfileError } from './errors.js';
import { parseInstruction } from './parse-instruction.js';
/** Frontends we honour for `# syntax=`; anything else is accepted with a warning. */
const KNOWN_SYNTAX = /^(docker\.io\/)?docker\/dockerfile(-upstream)?(:[0-9][\w.-]*|:labs|:latest)?(@sha256:[a-f0-9]{64})?$/;
export function parseDockerfile(text, fileName = 'Dockerfile') {
    const warnings = [];
    let ast;
    try {
        ast = DockerfileParser.parse(text.replace(/^\uFEFF/, ''));
    }
    catch (err) {
        throw new DockerfileError(`cannot parse ${fileName}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const escape = ast.getEscapeCharacter();
    for (const d of ast.getDirectives()) {
        if (d.getName().toLowerCase() === 'syntax' && !KNOWN_SYNTAX.test(d.getValue())) {
            warnings.push({
                message: `syntax directive ${JSON.stringify(d.getValue())} names a frontend buildlite cannot run; using the built-in Dockerfile frontend`,
                range: toRange(fileName, d.getRange()),
            });
        }
    }
    const instructions = [];
    for (const node of ast.getInstructions()) {
        const range = toRange(fileName, node.getRange());
        try {
            const raw = toRaw(node, escape, range);
            instructions.push(parseInstruction(raw, escape));
        }
        catch (err) {
            throw withLocation(asDockerfileError(err), range);
        }
    }
    if (instructions.length === 0)
        throw new DockerfileError(`${fileName} has no instructions`, { range: { file: fileName, startLine: 1, endLine: 1 } });
    return { escape, instructions, warnings };
}
export function asDockerfileError(err) {
    if (err instanceof DockerfileError)
        return err;
    if (err instanceof Error && !err.code) {
        // Input-driven failures in the parsing helpers (a RangeError on odd input) are still Dockerfile errors.
        return new DockerfileError(err.message, { cause: err });
    }
    return err;
}
export function toRange(file, r) {
    return { file, startLine: r.start.line + 1, endLine: r.end.line + 1, startColumn: r.start.character + 1, endColumn: r.end.character + 1 };
}
function toRaw(node, escape, range) {
    const keyword = node.getInstruction();
    // The whole instruction text: dockerfile-ast's argument accessors leave flags out.
    const full = node.getTextContent();
    const rawArgs = full.startsWith(keyword) ? full.slice(keyword.length) : full.replace(/^\s*\S+/, '');
    const { line, rest } = joinLogicalLine(rawArgs, escape);
    const heredocs = /^(RUN|COPY|ADD|ONBUILD)$/i.test(keyword) && line.includes('<<') && astSeesHeredocs(node, rest)
        ? readHeredocs(line, rest)
        : [];
    return { keyword, original: `${keyword} ${line}`.trim(), rest: line, heredocs, range };
}
/**
 * A `<<WORD` is a heredoc only when the instruction carries body lines.
 * Asking dockerfile-ast is slow (it re-tokenises), so it is the tie-breaker only.
 */
function astSeesHeredocs(node, rest) {
    if (rest.length > 0)
        return true;
    const get = node.getHeredocs;
    return typeof get === 'function' && get.call(node).length > 0;
}
/**
 * Joins continuation lines as BuildKit does: the escape character and the
 * blanks after it are dropped, comment and empty lines inside a continuation
 * are skipped, leading blanks of continued lines are kept. Returns the logical
 * line and the lines after it (heredoc bodies).
 */
export function joinLogicalLine(raw, escape) {
    const lines = raw.split(/\r?\n/);
    const esc = escape.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
    const cont = new RegExp(`${esc}[ \\t]*$`);
    let out = '';
    let i = 0;
    let cur = lines[i++] ?? '';
    for (;;) {
        if (!cont.test(cur)) {
            out += cur;
            break;
        }
        out += cur.replace(cont, '');
        while (i < lines.length && /^\s*(#.*)?$/.test(lines[i]))
            i++;
        if (i >= lines.length)
            break;
        cur = lines[i++];
    }
    return { line: out.trim(), rest: lines.slice(i) };
}
const HEREDOC_MARKER = /<<(-?)(["']?)([A-Za-z0-9_][A-Za-z0-9_.\-]*)\2/g;
/** The bodies of the heredocs opened on `line`, in order, from the lines after it. */
export function readHeredocs(line, rest) {
    const out = [];
    let i = 0;
    for (const m of line.matchAll(HEREDOC_MARKER)) {
        const chomp = m[1] === '-';
        const name = m[3];
        const body = [];
        let closed = false;
        while (i < rest.length) {
            let l = rest[i++];
            if (chomp)
                l = l.replace(/^\t+/, '');
            if (l === name) {
                closed = true;
                break;
            }
            body.push(l);
        }
        if (!closed)
            throw new DockerfileError(`unterminated heredoc: no line ${JSON.stringify(name)} ends it`);
        out.push({ name, data: body.map((l) => `${l}\n`).join(''), expand: m[2] === '', chomp });
    }
    return out;
}
//# sourceMappingURL=parse.js.map