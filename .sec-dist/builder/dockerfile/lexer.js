import { DockerfileError } from './errors.js';
const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);
function isSpace(ch) {
    return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v';
}
function isNameChar(ch) {
    return /^[\p{L}\p{N}_]$/u.test(ch);
}
/** Collects output words the way BuildKit does: expansions split on spaces, quoted text does not. */
class Words {
    word = '';
    inWord = false;
    words = [];
    addChar(ch) {
        if (isSpace(ch)) {
            if (this.inWord)
                this.flush();
        }
        else {
            this.addRawChar(ch);
        }
    }
    addRawChar(ch) {
        this.word += ch;
        this.inWord = true;
    }
    addString(s) {
        for (const ch of s)
            this.addChar(ch);
    }
    addRawString(s) {
        this.word += s;
        this.inWord = true;
    }
    flush() {
        if (this.word.length > 0)
            this.words.push(this.word);
        this.word = '';
        this.inWord = false;
    }
    finish() {
        this.flush();
        return this.words;
    }
}
class Scanner {
    chars;
    pos = 0;
    constructor(text) {
        this.chars = Array.from(text);
    }
    peek() {
        return this.chars[this.pos];
    }
    next() {
        return this.chars[this.pos++];
    }
}
class ShellWord {
    lookup;
    opts;
    sc;
    escape;
    constructor(text, lookup, opts) {
        this.lookup = lookup;
        this.opts = opts;
        this.sc = new Scanner(text);
        this.escape = opts.escape ?? '\\';
    }
    run() {
        const words = new Words();
        const { value } = this.processStopOn(undefined, words);
        return { value, words: words.finish() };
    }
    processStopOn(stop, words = new Words()) {
        let result = '';
        while (this.sc.peek() !== undefined) {
            const ch = this.sc.peek();
            if (stop !== undefined && ch === stop) {
                this.sc.next();
                return { value: result, found: true };
            }
            if (ch === "'" || ch === '"' || ch === '$') {
                const tmp = ch === "'" ? this.singleQuote() : ch === '"' ? this.doubleQuote() : this.dollar();
                result += tmp;
                if (ch === '$')
                    words.addString(tmp);
                else
                    words.addRawString(tmp);
                continue;
            }
            let c = this.sc.next();
            if (c === this.escape) {
                if (this.opts.rawEscapes) {
                    result += c;
                    words.addRawChar(c);
                }
                const n = this.sc.next();
                if (n === undefined)
                    break;
                c = n;
                words.addRawChar(c);
            }
            else {
                words.addChar(c);
            }
            result += c;
        }
        if (stop !== undefined)
            throw new DockerfileError(`syntax error: missing '${stop}'`);
        return { value: result, found: false };
    }
    singleQuote() {
        // Everything up to the next ' is literal, escapes included.
        let result = this.opts.rawQuotes ? "'" : '';
        this.sc.next();
        for (;;) {
            const ch = this.sc.next();
            if (ch === undefined)
                throw new DockerfileError('unexpected end of statement while looking for matching single-quote');
            if (ch === "'")
                break;
            result += ch;
        }
        return this.opts.rawQuotes ? `${result}'` : result;
    }
    doubleQuote() {
        // Literal up to the next ", except $ expansions; the escape character escapes only " $ and itself.
        let result = this.opts.rawQuotes ? '"' : '';
        this.sc.next();
        for (;;) {
            const ch = this.sc.peek();
            if (ch === undefined)
                throw new DockerfileError('unexpected end of statement while looking for matching double-quote');
            if (ch === '"') {
                this.sc.next();
                break;
            }
            if (ch === '$') {
                result += this.dollar();
                continue;
            }
            let c = this.sc.next();
            if (c === this.escape) {
                const n = this.sc.peek();
                if (n === undefined)
                    continue;
                if (n === '"' || n === '$' || n === this.escape) {
                    if (this.opts.rawEscapes)
                        result += c;
                    c = this.sc.next();
                }
            }
            result += c;
        }
        return this.opts.rawQuotes ? `${result}"` : result;
    }
    get(name) {
        this.opts.onLookup?.(name);
        return this.lookup(name);
    }
    dollar() {
        this.sc.next();
        if (this.sc.peek() !== '{') {
            const name = this.processName();
            if (name === '')
                return '$';
            return this.get(name) ?? '';
        }
        this.sc.next();
        const first = this.sc.peek();
        if (first === undefined)
            throw new DockerfileError("syntax error: missing '}'");
        if (first === '{' || first === '}' || first === ':')
            throw new DockerfileError('syntax error: bad substitution');
        const name = this.processName();
        const ch = this.sc.next();
        switch (ch) {
            case '}':
                return this.get(name) ?? '';
            case ':': {
                const modifier = this.sc.next();
                const word = this.processStopOn('}').value;
                const value = this.get(name);
                switch (modifier) {
                    case '+':
                        return value !== undefined && value !== '' ? word : '';
                    case '-':
                        return value === undefined || value === '' ? word : value;
                    case '?':
                        if (value === undefined)
                            throw new DockerfileError(`${name}: ${word || 'is not allowed to be unset'}`);
                        if (value === '')
                            throw new DockerfileError(`${name}: ${word || 'is not allowed to be empty'}`);
                        return value;
                    default:
                        throw new DockerfileError(`unsupported modifier (${modifier ?? 'EOF'}) in substitution`);
                }
            }
            case '+':
            case '-':
            case '?': {
                const word = this.processStopOn('}').value;
                const value = this.get(name);
                if (ch === '+')
                    return value !== undefined ? word : '';
                if (ch === '-')
                    return value === undefined ? word : value;
                if (value === undefined)
                    throw new DockerfileError(`${name}: ${word || 'is not allowed to be unset'}`);
                return value;
            }
            case undefined:
                throw new DockerfileError("syntax error: missing '}'");
            default:
                throw new DockerfileError(`unsupported modifier (${ch}) in substitution`);
        }
    }
    processName() {
        let name = '';
        for (;;) {
            const ch = this.sc.peek();
            if (ch === undefined)
                return name;
            if (name === '' && /^[0-9]$/.test(ch)) {
                while (this.sc.peek() !== undefined && /^[0-9]$/.test(this.sc.peek()))
                    name += this.sc.next();
                return name;
            }
            if (name === '' && SPECIAL_PARAMS.has(ch)) {
                this.sc.next();
                return ch;
            }
            if (!isNameChar(ch))
                return name;
            name += this.sc.next();
        }
    }
}
/** One word in, one string out: quotes removed, variables expanded, no splitting. */
export function processWord(word, lookup, opts = {}) {
    return new ShellWord(word, lookup, opts).run().value;
}
/** Like processWord, but the result is split into words (unquoted expansions split on spaces). */
export function processWords(text, lookup, opts = {}) {
    return new ShellWord(text, lookup, opts).run().words;
}
/** A lookup over a plain map. */
export function mapLookup(env) {
    if (env instanceof Map)
        return (n) => env.get(n);
    const rec = env;
    return (n) => (Object.prototype.hasOwnProperty.call(rec, n) ? rec[n] : undefined);
}
/**
 * Split an instruction's text into words, keeping quotes and escapes (BuildKit's
 * parser `parseWords`): ENV/LABEL/ARG pairs are found here, their values are
 * processed later by processWord.
 */
export function parseWords(rest, escape = '\\') {
    const chars = Array.from(rest);
    const words = [];
    let phase = 'spaces';
    let quote = '';
    let blankOK = false;
    let sb = '';
    for (let pos = 0; pos <= chars.length; pos++) {
        let ch = chars[pos] ?? '';
        if (phase === 'spaces') {
            if (pos === chars.length)
                break;
            if (isSpace(ch))
                continue;
            phase = 'word';
        }
        if (pos === chars.length) {
            if (blankOK || sb.length > 0)
                words.push(sb);
            break;
        }
        if (phase === 'word') {
            if (isSpace(ch)) {
                phase = 'spaces';
                if (blankOK || sb.length > 0)
                    words.push(sb);
                sb = '';
                blankOK = false;
                continue;
            }
            if (ch === "'" || ch === '"') {
                quote = ch;
                blankOK = true;
                phase = 'quote';
            }
            if (ch === escape) {
                if (pos + 1 === chars.length)
                    continue;
                sb += ch;
                pos++;
                ch = chars[pos] ?? '';
            }
            sb += ch;
            continue;
        }
        // in quote
        if (ch === quote)
            phase = 'word';
        if (ch === escape && quote !== "'") {
            if (pos + 1 === chars.length) {
                phase = 'word';
                continue;
            }
            sb += ch;
            pos++;
            ch = chars[pos] ?? '';
        }
        sb += ch;
    }
    return words;
}
/** Split on runs of whitespace, no quote handling (BuildKit's parseStringsWhitespaceDelimited). */
export function splitWhitespace(rest) {
    return rest.split(/[ \t\r\n\f\v]+/).filter((w) => w !== '');
}
//# sourceMappingURL=lexer.js.map