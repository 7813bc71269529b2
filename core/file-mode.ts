import { BuildliteError, type ErrorCode } from './errors.js';

/**
 * `--chmod` values as BuildKit takes them: an octal mode (`755`, `0640`, at
 * most 07777) or chmod(1)'s symbolic form (`u+x`, `go-w,u=rwx`, `a+X`,
 * `g=u`), which changes each copied file's own mode. Symbolic modes follow
 * BSD setmode(3) with an empty umask, the library BuildKit applies them with:
 * no `who` means all of u, g and o; `X` adds search/execute when the file is a
 * directory or already executable by someone (and removes like `x`); `s` and
 * `t` mean nothing for `o` alone; `=` clears the named classes (all but the
 * sticky bit when none is named) before it sets.
 */
export type FileModeSpec =
  | { readonly kind: 'octal'; readonly mode: number }
  | { readonly kind: 'symbolic'; readonly text: string; readonly steps: readonly ModeStep[] };

/** One change to a mode, in order: set or clear bits, set bits only for directories and executables, or copy a class. */
export type ModeStep =
  | { readonly op: 'set' | 'clear'; readonly bits: number }
  | { readonly op: 'set-if-exec'; readonly bits: number }
  | { readonly op: 'copy'; readonly from: Class; readonly how: Operator; readonly to: readonly Class[] };

type Class = 'u' | 'g' | 'o';
type Operator = '+' | '-' | '=';

export class InvalidFileModeError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
  constructor(readonly text: string, reason: string) {
    super(`invalid --chmod ${JSON.stringify(text)}: ${reason}`);
  }
}

const MAX_OCTAL = 0o7777;
/** What each `who` letter covers; `a` is all three with their special bits, sticky excepted. */
const WHO: Record<string, number> = { u: 0o4700, g: 0o2070, o: 0o0007, a: 0o6777 };
const PERM: Record<string, number> = { r: 0o444, w: 0o222, x: 0o111 };
const SETID = 0o6000;
const STICKY = 0o1000;
const ALL = 0o7777;
/** What `=` clears when no class is named. */
const ALL_BUT_STICKY = 0o6777;
const SHIFT: Record<Class, number> = { u: 6, g: 3, o: 0 };

export function parseFileMode(text: string): FileModeSpec {
  if (text === '') throw new InvalidFileModeError(text, 'empty');
  if (/^[0-9]/.test(text)) {
    const mode = /^[0-7]+$/.test(text) ? parseInt(text, 8) : NaN;
    if (!(mode <= MAX_OCTAL)) throw new InvalidFileModeError(text, 'an octal mode is at most 4 digits 0-7 (at most 7777)');
    return { kind: 'octal', mode };
  }
  return { kind: 'symbolic', text, steps: parseSymbolic(text) };
}

/** chmod(1) grammar: clauses split by `,`; each is [ugoa]* then one or more of an operator followed by [rwxXst]* and [ugo]. */
function parseSymbolic(text: string): ModeStep[] {
  const steps: ModeStep[] = [];
  const bad = (why: string): InvalidFileModeError => new InvalidFileModeError(text, why);
  let i = 0;
  for (;;) {
    let who = 0;
    const classes: Class[] = [];
    while (i < text.length && text[i]! in WHO) {
      const w = text[i++]!;
      who |= WHO[w]!;
      if (w === 'a') classes.push('u', 'g', 'o');
      else classes.push(w as Class);
    }
    if (i >= text.length) throw bad('a clause needs an operator (+, - or =)');
    do {
      const op = text[i++]!;
      if (op !== '+' && op !== '-' && op !== '=') throw bad(`unexpected ${JSON.stringify(op)} where an operator (+, - or =) belongs`);
      i = parseAction(text, i, op, who, classes.length > 0 ? [...new Set(classes)] : ['u', 'g', 'o'], steps);
    } while (i < text.length && text[i] !== ',');
    if (i >= text.length) return steps;
    i++; // the comma: another clause must follow
    if (i >= text.length) throw bad('a trailing comma');
  }
}

/** One operator and the permission letters after it; returns where the next operator or clause starts. */
function parseAction(text: string, start: number, op: Operator, who: number, classes: readonly Class[], steps: ModeStep[]): number {
  let i = start;
  let perm = 0;
  let special = 0;
  let ifExec = false;
  // `=` clears once, before the first thing it sets; copying a class clears that class on its own.
  let cleared = false;
  const mask = (): number => (who === 0 ? ALL : who | (special & STICKY ? STICKY : 0));
  const flush = (): void => {
    const bits = (perm | special) & mask();
    if (op === '=' && !cleared) {
      steps.push({ op: 'clear', bits: who === 0 ? ALL_BUT_STICKY : mask() });
      cleared = true;
    }
    if (bits !== 0) steps.push({ op: op === '-' ? 'clear' : 'set', bits });
    if (ifExec) steps.push({ op: 'set-if-exec', bits: PERM['x']! & mask() });
    perm = 0;
    special = 0;
    ifExec = false;
  };
  // `s` and `t` name the special bits of u and g; for `o` alone they change nothing.
  const specialsApply = who === 0 || (who & ~WHO['o']!) !== 0;
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (ch in PERM) perm |= PERM[ch]!;
    else if (ch === 'X') {
      if (op === '-') perm |= PERM['x']!;
      else ifExec = true;
    } else if (ch === 's') {
      if (specialsApply) special |= SETID;
    } else if (ch === 't') {
      if (specialsApply) special |= STICKY;
    } else if (ch === 'u' || ch === 'g' || ch === 'o') {
      if (perm !== 0 || special !== 0 || ifExec) flush();
      if (op === '=') cleared = true;
      steps.push({ op: 'copy', from: ch, how: op, to: classes });
    } else break;
  }
  if (perm !== 0 || special !== 0 || ifExec || (op === '=' && !cleared)) flush();
  return i;
}

/** The mode a file with permission bits `mode` (its 12 low bits) gets. */
export function applyFileMode(spec: FileModeSpec, mode: number, isDir: boolean): number {
  if (spec.kind === 'octal') return spec.mode;
  const before = mode & ALL;
  let m = before;
  const executable = isDir || (before & PERM['x']!) !== 0;
  for (const s of spec.steps) {
    switch (s.op) {
      case 'set':
        m |= s.bits;
        break;
      case 'clear':
        m &= ~s.bits;
        break;
      case 'set-if-exec':
        if (executable) m |= s.bits;
        break;
      case 'copy': {
        const value = (m >> SHIFT[s.from]) & 0o7;
        for (const c of s.to) {
          if (s.how === '=') m &= ~(0o7 << SHIFT[c]);
          if (s.how === '-') m &= ~(value << SHIFT[c]);
          else m |= value << SHIFT[c];
        }
        break;
      }
    }
  }
  return m & ALL;
}
