import { DockerfileError, suggest } from './errors.js';
/** Split `--a=1 --b "x y" rest` into flag words (quotes removed) and the rest of the line. */
export function extractFlagWords(line) {
    const words = [];
    let phase = 'spaces';
    let word = '';
    let quote = '';
    let blankOK = false;
    for (let pos = 0; pos <= line.length; pos++) {
        let ch = line[pos] ?? '';
        if (phase === 'spaces') {
            if (pos === line.length)
                break;
            if (/\s/.test(ch))
                continue;
            if (ch !== '-' || line[pos + 1] !== '-')
                return { words, rest: line.slice(pos) };
            phase = 'word';
        }
        if (pos === line.length) {
            if (word !== '--' && (blankOK || word.length > 0))
                words.push(word);
            break;
        }
        if (phase === 'word') {
            if (/\s/.test(ch)) {
                phase = 'spaces';
                if (word === '--')
                    return { words, rest: line.slice(pos).trimStart() };
                if (blankOK || word.length > 0)
                    words.push(word);
                word = '';
                blankOK = false;
                continue;
            }
            if (ch === "'" || ch === '"') {
                quote = ch;
                blankOK = true;
                phase = 'quote';
                continue;
            }
            if (ch === '\\') {
                if (pos + 1 === line.length)
                    continue;
                pos++;
                ch = line[pos] ?? '';
            }
            word += ch;
            continue;
        }
        if (ch === quote) {
            phase = 'word';
            continue;
        }
        if (ch === '\\') {
            if (pos + 1 === line.length) {
                phase = 'word';
                continue;
            }
            pos++;
            ch = line[pos] ?? '';
        }
        word += ch;
    }
    return { words, rest: '' };
}
export function parseFlags(keyword, words, spec) {
    const strings = new Map();
    const bools = new Map();
    const lists = new Map();
    for (const w of words) {
        if (!w.startsWith('--'))
            throw new DockerfileError(`${keyword}: arguments must begin with '--', got ${JSON.stringify(w)}`);
        const body = w.slice(2);
        const eq = body.indexOf('=');
        const name = eq < 0 ? body : body.slice(0, eq);
        const value = eq < 0 ? undefined : body.slice(eq + 1);
        const kind = spec[name];
        if (kind === undefined) {
            const hint = suggest(name, Object.keys(spec));
            throw new DockerfileError(`${keyword}: unknown flag: --${name}`, hint ? { suggestion: `--${hint}` } : undefined);
        }
        if (kind === 'bool') {
            if (bools.has(name))
                throw new DockerfileError(`${keyword}: duplicate flag specified: --${name}`);
            if (value === undefined || value === '' || value.toLowerCase() === 'true')
                bools.set(name, true);
            else if (value.toLowerCase() === 'false')
                bools.set(name, false);
            else
                throw new DockerfileError(`${keyword}: expecting boolean value for flag --${name}, not: ${value}`);
            continue;
        }
        if (value === undefined)
            throw new DockerfileError(`${keyword}: missing a value on flag: --${name}`);
        if (kind === 'string') {
            if (strings.has(name))
                throw new DockerfileError(`${keyword}: duplicate flag specified: --${name}`);
            strings.set(name, value);
        }
        else {
            const l = lists.get(name) ?? [];
            l.push(value);
            lists.set(name, l);
        }
    }
    return { strings, bools, lists };
}
//# sourceMappingURL=flags.js.map