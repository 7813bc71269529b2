import { DockerfileParser, type Instruction as AstInstruction } from 'dockerfile-ast';
import { withLocation, type SourceRange } from '../../core/errors.js';
import type { Warning } from '../graph/index.js';
import { DockerfileError } from './errors.js';
import type { Heredoc, Instruction, RawInstruction } from './instructions.js';
import { parseInstruction } from './parse-instruction.js';

/**
 * Dockerfile text → typed instructions with ranges. dockerfile-ast finds the
 * instructions, their extent and the parser directives; the joining of
 * continuation lines and heredoc bodies follows BuildKit's parser.
 */
export interface ParsedDockerfile {
  readonly escape: string;
  readonly instructions: readonly Instruction[];
  readonly warnings: readonly Warning[];
  /** What build checks read from the text itself (checks.ts). */
  readonly checkText: CheckText;
}

export interface CheckText {
  /** The `# check=` directive, when the file has one. */
  readonly directive?: { readonly value: string; readonly range: SourceRange };
  /** `check=` comments right above an instruction (since the previous one, after an empty `#`), by its first line. */
  readonly comments: ReadonlyMap<number, string>;
  /** Instructions with an empty line inside their continuation. */
  readonly emptyContinuations: readonly SourceRange[];
}

/** Frontends we honour for `# syntax=`; anything else is accepted with a warning. */
const KNOWN_SYNTAX = /^(docker\.io\/)?docker\/dockerfile(-upstream)?(:[0-9][\w.-]*|:labs|:latest)?(@sha256:[a-f0-9]{64})?$/;

export function parseDockerfile(text: string, fileName = 'Dockerfile'): ParsedDockerfile {
  const warnings: Warning[] = [];
  let ast;
  try {
    ast = DockerfileParser.parse(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    throw new DockerfileError(`cannot parse ${fileName}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const escape = ast.getEscapeCharacter();
  let directive: CheckText['directive'];
  for (const d of ast.getDirectives()) {
    if (d.getName().toLowerCase() === 'check') directive = { value: d.getValue(), range: toRange(fileName, d.getRange()) };
    if (d.getName().toLowerCase() === 'syntax' && !KNOWN_SYNTAX.test(d.getValue())) {
      warnings.push({
        message: `syntax directive ${JSON.stringify(d.getValue())} names a frontend buildlite cannot run; using the built-in Dockerfile frontend`,
        range: toRange(fileName, d.getRange()),
      });
    }
  }
  const instructions: Instruction[] = [];
  const emptyContinuations: SourceRange[] = [];
  for (const node of ast.getInstructions()) {
    const range = toRange(fileName, node.getRange());
    try {
      const raw = toRaw(node, escape, range);
      if (raw.emptyContinuation) emptyContinuations.push(range);
      instructions.push(parseInstruction(raw, escape));
    } catch (err) {
      throw withLocation(asDockerfileError(err), range);
    }
  }
  if (instructions.length === 0) throw new DockerfileError(`${fileName} has no instructions`, { range: { file: fileName, startLine: 1, endLine: 1 } });
  const comments = checkComments(ast, instructions);
  return { escape, instructions, warnings, checkText: { ...(directive ? { directive } : {}), comments, emptyContinuations } };
}

/** BuildKit reads the comments since the previous instruction, from the last empty `#` on, for a `check=` line. */
function checkComments(ast: ReturnType<typeof DockerfileParser.parse>, instructions: readonly Instruction[]): Map<number, string> {
  const out = new Map<number, string>();
  const comments = ast.getComments().map((c) => ({ line: c.getRange().start.line + 1, text: c.getContent().trim() }));
  let prevEnd = 0;
  for (const ins of instructions) {
    const mine = comments.filter((c) => c.line > prevEnd && c.line < ins.range.startLine);
    const lastEmpty = mine.map((c) => c.text).lastIndexOf('');
    for (const c of mine.slice(lastEmpty + 1)) {
      const m = /^check\s*=\s*(\S+)/i.exec(c.text);
      if (m) {
        out.set(ins.range.startLine, m[1] as string);
        break;
      }
    }
    prevEnd = ins.range.endLine;
  }
  return out;
}

export function asDockerfileError(err: unknown): unknown {
  if (err instanceof DockerfileError) return err;
  if (err instanceof Error && !(err as { code?: unknown }).code) {
    // Input-driven failures in the parsing helpers (a RangeError on odd input) are still Dockerfile errors.
    return new DockerfileError(err.message, { cause: err });
  }
  return err;
}

interface AstRange {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

export function toRange(file: string, r: AstRange): SourceRange {
  return { file, startLine: r.start.line + 1, endLine: r.end.line + 1, startColumn: r.start.character + 1, endColumn: r.end.character + 1 };
}

function toRaw(node: AstInstruction, escape: string, range: SourceRange): RawInstruction & { emptyContinuation: boolean } {
  const keyword = node.getInstruction();
  // The whole instruction text: dockerfile-ast's argument accessors leave flags out.
  const full = node.getTextContent();
  const rawArgs = full.startsWith(keyword) ? full.slice(keyword.length) : full.replace(/^\s*\S+/, '');
  const { line, rest, emptyContinuation } = joinLogicalLine(rawArgs, escape);
  const heredocs = /^(RUN|COPY|ADD|ONBUILD)$/i.test(keyword) && line.includes('<<') && astSeesHeredocs(node, rest)
    ? readHeredocs(line, rest)
    : [];
  return { keyword, original: `${keyword} ${line}`.trim(), rest: line, heredocs, range, emptyContinuation };
}

/**
 * A `<<WORD` is a heredoc only when the instruction carries body lines.
 * Asking dockerfile-ast is slow (it re-tokenises), so it is the tie-breaker only.
 */
function astSeesHeredocs(node: AstInstruction, rest: readonly string[]): boolean {
  if (rest.length > 0) return true;
  const get = (node as unknown as { getHeredocs?: () => unknown[] }).getHeredocs;
  return typeof get === 'function' && get.call(node).length > 0;
}

/**
 * Joins continuation lines as BuildKit does: the escape character and the
 * blanks after it are dropped, comment and empty lines inside a continuation
 * are skipped, leading blanks of continued lines are kept. Returns the logical
 * line and the lines after it (heredoc bodies).
 */
export function joinLogicalLine(raw: string, escape: string): { line: string; rest: string[]; emptyContinuation: boolean } {
  const lines = raw.split(/\r?\n/);
  const esc = escape.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  const cont = new RegExp(`${esc}[ \\t]*$`);
  let out = '';
  let i = 0;
  let cur = lines[i++] ?? '';
  let emptyContinuation = false;
  for (;;) {
    if (!cont.test(cur)) {
      out += cur;
      break;
    }
    out += cur.replace(cont, '');
    while (i < lines.length && /^\s*(#.*)?$/.test(lines[i] as string)) {
      if (!(lines[i] as string).includes('#')) emptyContinuation = true;
      i++;
    }
    if (i >= lines.length) break;
    cur = lines[i++] as string;
  }
  return { line: out.trim(), rest: lines.slice(i), emptyContinuation };
}

const HEREDOC_MARKER = /<<(-?)(["']?)([A-Za-z0-9_][A-Za-z0-9_.\-]*)\2/g;

/** The bodies of the heredocs opened on `line`, in order, from the lines after it. */
export function readHeredocs(line: string, rest: readonly string[]): Heredoc[] {
  const out: Heredoc[] = [];
  let i = 0;
  for (const m of line.matchAll(HEREDOC_MARKER)) {
    const chomp = m[1] === '-';
    const name = m[3] as string;
    const body: string[] = [];
    let closed = false;
    while (i < rest.length) {
      let l = rest[i++] as string;
      if (chomp) l = l.replace(/^\t+/, '');
      if (l === name) {
        closed = true;
        break;
      }
      body.push(l);
    }
    if (!closed) throw new DockerfileError(`unterminated heredoc: no line ${JSON.stringify(name)} ends it`);
    out.push({ name, data: body.map((l) => `${l}\n`).join(''), expand: m[2] === '', chomp });
  }
  return out;
}
