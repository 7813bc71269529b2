import { DockerfileError } from './errors.js';

/**
 * Shell-word processing with BuildKit's meaning (its `shell.Lex`): quote
 * removal, escapes, and `$a ${a} ${a:-w} ${a-w} ${a:+w} ${a+w} ${a:?w} ${a?w}`
 * expansion, and the pattern forms `${a#p} ${a##p} ${a%p} ${a%%p} ${a/p/r}
 * ${a//p/r}` (`?` and `*` globs, `\` escapes them). This is not a shell: no
 * globbing, no command substitution.
 */

/** Variable lookup: undefined means "not set" (different from set-but-empty for `${a-w}`). */
export type Lookup = (name: string) => string | undefined;

export interface LexOptions {
  /** The escape character of the Dockerfile (`\` or a backtick). */
  readonly escape?: string;
  /** Keep quotes in the output (heredoc bodies). */
  readonly rawQuotes?: boolean;
  /** Keep escape characters in the output (heredoc bodies). */
  readonly rawEscapes?: boolean;
  /** Called with every variable name looked up; used for "unused build-arg" accounting. */
  readonly onLookup?: (name: string) => void;
}

const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v';
}

function isNameChar(ch: string): boolean {
  return /^[\p{L}\p{N}_]$/u.test(ch);
}

/** Collects output words the way BuildKit does: expansions split on spaces, quoted text does not. */
class Words {
  private word = '';
  private inWord = false;
  readonly words: string[] = [];

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord) this.flush();
    } else {
      this.addRawChar(ch);
    }
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  private flush(): void {
    if (this.word.length > 0) this.words.push(this.word);
    this.word = '';
    this.inWord = false;
  }
  finish(): string[] {
    this.flush();
    return this.words;
  }
}

class Scanner {
  private readonly chars: string[];
  private pos = 0;
  constructor(text: string) {
    this.chars = Array.from(text);
  }
  peek(): string | undefined {
    return this.chars[this.pos];
  }
  next(): string | undefined {
    return this.chars[this.pos++];
  }
}

class ShellWord {
  private readonly sc: Scanner;
  private readonly escape: string;

  constructor(
    text: string,
    private readonly lookup: Lookup,
    private readonly opts: LexOptions,
  ) {
    this.sc = new Scanner(text);
    this.escape = opts.escape ?? '\\';
  }

  run(): { value: string; words: string[] } {
    const words = new Words();
    const { value } = this.processStopOn(undefined, words);
    return { value, words: words.finish() };
  }

  /** `keepEscapes`: escapes stay in the value (a pattern's `\*` must still mean a literal star). */
  private processStopOn(stop: string | undefined, words: Words = new Words(), keepEscapes = false): { value: string; found: boolean } {
    let result = '';
    while (this.sc.peek() !== undefined) {
      const ch = this.sc.peek() as string;
      if (stop !== undefined && ch === stop) {
        this.sc.next();
        return { value: result, found: true };
      }
      if (ch === "'" || ch === '"' || ch === '$') {
        const tmp = ch === "'" ? this.singleQuote() : ch === '"' ? this.doubleQuote() : this.dollar();
        result += tmp;
        if (ch === '$') words.addString(tmp);
        else words.addRawString(tmp);
        continue;
      }
      let c = this.sc.next() as string;
      if (c === this.escape) {
        if (this.opts.rawEscapes || keepEscapes) {
          result += c;
          words.addRawChar(c);
        }
        const n = this.sc.next();
        if (n === undefined) break;
        c = n;
        words.addRawChar(c);
      } else {
        words.addChar(c);
      }
      result += c;
    }
    if (stop !== undefined) throw new DockerfileError(`syntax error: missing '${stop}'`);
    return { value: result, found: false };
  }

  private singleQuote(): string {
    // Everything up to the next ' is literal, escapes included.
    let result = this.opts.rawQuotes ? "'" : '';
    this.sc.next();
    for (;;) {
      const ch = this.sc.next();
      if (ch === undefined) throw new DockerfileError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") break;
      result += ch;
    }
    return this.opts.rawQuotes ? `${result}'` : result;
  }

  private doubleQuote(): string {
    // Literal up to the next ", except $ expansions; the escape character escapes only " $ and itself.
    let result = this.opts.rawQuotes ? '"' : '';
    this.sc.next();
    for (;;) {
      const ch = this.sc.peek();
      if (ch === undefined) throw new DockerfileError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.sc.next();
        break;
      }
      if (ch === '$') {
        result += this.dollar();
        continue;
      }
      let c = this.sc.next() as string;
      if (c === this.escape) {
        const n = this.sc.peek();
        if (n === undefined) continue;
        if (n === '"' || n === '$' || n === this.escape) {
          if (this.opts.rawEscapes) result += c;
          c = this.sc.next() as string;
        }
      }
      result += c;
    }
    return this.opts.rawQuotes ? `${result}"` : result;
  }

  private get(name: string): string | undefined {
    this.opts.onLookup?.(name);
    return this.lookup(name);
  }

  private dollar(): string {
    this.sc.next();
    if (this.sc.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      return this.get(name) ?? '';
    }
    this.sc.next();
    const first = this.sc.peek();
    if (first === undefined) throw new DockerfileError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new DockerfileError('syntax error: bad substitution');
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
            if (value === undefined) throw new DockerfileError(`${name}: ${word || 'is not allowed to be unset'}`);
            if (value === '') throw new DockerfileError(`${name}: ${word || 'is not allowed to be empty'}`);
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
        if (ch === '+') return value !== undefined ? word : '';
        if (ch === '-') return value === undefined ? word : value;
        if (value === undefined) throw new DockerfileError(`${name}: ${word || 'is not allowed to be unset'}`);
        return value;
      }
      case '#':
      case '%': {
        const greedy = this.sc.peek() === ch;
        if (greedy) this.sc.next();
        const pattern = this.processStopOn('}', undefined, true).value;
        return trimPattern(this.get(name) ?? '', pattern, ch === '#' ? 'prefix' : 'suffix', greedy);
      }
      case '/': {
        const all = this.sc.peek() === '/';
        if (all) this.sc.next();
        const pattern = this.processStopOn('/', undefined, true).value;
        const replacement = this.processStopOn('}', undefined, true).value;
        return replacePattern(this.get(name) ?? '', pattern, replacement, all);
      }
      case undefined:
        throw new DockerfileError("syntax error: missing '}'");
      default:
        throw new DockerfileError(`unsupported modifier (${ch}) in substitution`);
    }
  }

  private processName(): string {
    let name = '';
    for (;;) {
      const ch = this.sc.peek();
      if (ch === undefined) return name;
      if (name === '' && /^[0-9]$/.test(ch)) {
        while (this.sc.peek() !== undefined && /^[0-9]$/.test(this.sc.peek() as string)) name += this.sc.next();
        return name;
      }
      if (name === '' && SPECIAL_PARAMS.has(ch)) {
        this.sc.next();
        return ch;
      }
      if (!isNameChar(ch)) return name;
      name += this.sc.next();
    }
  }
}

/** A shell pattern as a regex source: `*` any run of characters, `?` one, `\x` a literal x. */
function globSource(pattern: string): string {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else {
      const lit = ch === '\\' && i + 1 < pattern.length ? (pattern[++i] as string) : ch;
      re += lit.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
    }
  }
  return re;
}

/** `${a#p}` / `${a##p}` (prefix) and `${a%p}` / `${a%%p}` (suffix): remove the shortest, or with `greedy` the longest, match. */
function trimPattern(value: string, pattern: string, side: 'prefix' | 'suffix', greedy: boolean): string {
  const whole = new RegExp(`^${globSource(pattern)}$`, 's');
  const cuts = Array.from({ length: value.length + 1 }, (_, i) => i);
  // Prefix cuts grow from the start, suffix cuts from the end; the greedy form tries the longest first.
  const lengths = greedy ? cuts.reverse() : cuts;
  for (const n of lengths) {
    const part = side === 'prefix' ? value.slice(0, n) : value.slice(value.length - n);
    if (whole.test(part)) return side === 'prefix' ? value.slice(n) : value.slice(0, value.length - n);
  }
  return value;
}

/** `${a/p/r}` replaces the first match of p (longest at the leftmost place), `${a//p/r}` every one. */
function replacePattern(value: string, pattern: string, replacement: string, all: boolean): string {
  if (pattern === '') return value;
  const re = new RegExp(globSource(pattern), all ? 'gs' : 's');
  return value.replace(re, () => replacement);
}

/** One word in, one string out: quotes removed, variables expanded, no splitting. */
export function processWord(word: string, lookup: Lookup, opts: LexOptions = {}): string {
  return new ShellWord(word, lookup, opts).run().value;
}

/** Like processWord, but the result is split into words (unquoted expansions split on spaces). */
export function processWords(text: string, lookup: Lookup, opts: LexOptions = {}): string[] {
  return new ShellWord(text, lookup, opts).run().words;
}

/** A lookup over a plain map. */
export function mapLookup(env: ReadonlyMap<string, string> | Record<string, string>): Lookup {
  if (env instanceof Map) return (n) => env.get(n);
  const rec = env as Record<string, string>;
  return (n) => (Object.prototype.hasOwnProperty.call(rec, n) ? rec[n] : undefined);
}

/**
 * Split an instruction's text into words, keeping quotes and escapes (BuildKit's
 * parser `parseWords`): ENV/LABEL/ARG pairs are found here, their values are
 * processed later by processWord.
 */
export function parseWords(rest: string, escape = '\\'): string[] {
  const chars = Array.from(rest);
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  let blankOK = false;
  let sb = '';
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = chars[pos] ?? '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || sb.length > 0) words.push(sb);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOK || sb.length > 0) words.push(sb);
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
        if (pos + 1 === chars.length) continue;
        sb += ch;
        pos++;
        ch = chars[pos] ?? '';
      }
      sb += ch;
      continue;
    }
    // in quote
    if (ch === quote) phase = 'word';
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
export function splitWhitespace(rest: string): string[] {
  return rest.split(/[ \t\r\n\f\v]+/).filter((w) => w !== '');
}
