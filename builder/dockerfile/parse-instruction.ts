import { DockerfileError, suggest } from './errors.js';
import { extractFlagWords, parseFlags, type FlagSpec, type ParsedFlags } from './flags.js';
import {
  KEYWORDS,
  type CommandForm,
  type CopySource,
  type Instruction,
  type KeyValue,
  type RawInstruction,
} from './instructions.js';
import { parseWords, splitWhitespace } from './lexer.js';
import { parseDuration, parseNonNegativeInt } from './values.js';

/** Raw logical line → typed instruction; syntax errors here carry no range (the caller adds it). */

const FLAGS: Record<string, FlagSpec> = {
  FROM: { platform: 'string' },
  RUN: { mount: 'list', network: 'string', security: 'string' },
  COPY: { from: 'string', chown: 'string', chmod: 'string', link: 'bool', exclude: 'list', parents: 'bool' },
  ADD: { chown: 'string', chmod: 'string', link: 'bool', exclude: 'list', checksum: 'string', 'keep-git-dir': 'bool', unpack: 'bool' },
  HEALTHCHECK: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};

/** Keywords that cannot be ONBUILD triggers. */
const NOT_TRIGGERS = new Set(['ONBUILD', 'FROM', 'MAINTAINER']);

/** Docker's floor for HEALTHCHECK durations (0 means "inherit"). */
const MIN_HEALTH_DURATION_NS = 1e6;

export function parseInstruction(raw: RawInstruction, escape: string): Instruction {
  const keyword = raw.keyword.toUpperCase();
  if (!(KEYWORDS as readonly string[]).includes(keyword)) {
    const hint = suggest(keyword, KEYWORDS);
    throw new DockerfileError(`unknown instruction: ${raw.keyword}`, hint ? { suggestion: hint } : undefined);
  }
  if (keyword === 'ONBUILD') return parseOnbuild(raw, escape);
  const { words, rest } = extractFlagWords(raw.rest);
  const flags = parseFlags(keyword, words, FLAGS[keyword] ?? {});
  const base = { range: raw.range, original: raw.original };
  const text = rest.trim();
  const need = (): void => {
    if (text === '' && raw.heredocs.length === 0) throw new DockerfileError(`${keyword} requires at least one argument`);
  };
  switch (keyword) {
    case 'FROM': {
      const args = splitWhitespace(text);
      if (args.length !== 1 && !(args.length === 3 && args[1]?.toUpperCase() === 'AS')) {
        throw new DockerfileError('FROM requires either one or three arguments: FROM <image> [AS <name>]');
      }
      const name = args[2]?.toLowerCase();
      if (name !== undefined && !/^[a-z][a-z0-9\-_.]*$/.test(name)) {
        throw new DockerfileError(`invalid name for build stage: ${JSON.stringify(args[2])}, name can't start with a number or contain symbols`);
      }
      const platform = flags.strings.get('platform');
      return { kind: 'FROM', ...base, image: args[0] as string, ...(name ? { name } : {}), ...(platform !== undefined ? { platform } : {}) };
    }
    case 'RUN': {
      need();
      const network = flags.strings.get('network');
      const security = flags.strings.get('security');
      return {
        kind: 'RUN',
        ...base,
        cmd: commandForm(text, keyword),
        mounts: flags.lists.get('mount') ?? [],
        ...(network !== undefined ? { network } : {}),
        ...(security !== undefined ? { security } : {}),
        heredocs: raw.heredocs,
      };
    }
    case 'CMD':
    case 'ENTRYPOINT':
      need();
      return { kind: keyword, ...base, cmd: commandForm(text, keyword) };
    case 'ENV':
    case 'LABEL':
      return { kind: keyword, ...base, ...parseNameVal(text, keyword, escape) };
    case 'ARG':
      return { kind: 'ARG', ...base, args: parseArgs(text, escape) };
    case 'EXPOSE':
      need();
      return { kind: 'EXPOSE', ...base, text };
    case 'USER':
    case 'WORKDIR':
    case 'STOPSIGNAL':
    case 'MAINTAINER':
      need();
      return { kind: keyword, ...base, value: text };
    case 'VOLUME': {
      need();
      const json = maybeJson(text, keyword);
      const volumes = json ?? splitWhitespace(text);
      if (volumes.length === 0) throw new DockerfileError('VOLUME requires at least one argument');
      return { kind: 'VOLUME', ...base, volumes };
    }
    case 'SHELL': {
      const json = maybeJson(text, keyword);
      if (!json) throw new DockerfileError('SHELL requires the arguments to be in JSON form');
      if (json.length === 0) throw new DockerfileError('SHELL requires at least one argument');
      return { kind: 'SHELL', ...base, shell: json };
    }
    case 'HEALTHCHECK':
      return parseHealthcheck(text, flags, base);
    case 'COPY':
    case 'ADD':
      return parseCopy(keyword, text, flags, raw, base);
    default:
      throw new DockerfileError(`unknown instruction: ${raw.keyword}`);
  }
}

function parseOnbuild(raw: RawInstruction, escape: string): Instruction {
  const expression = raw.rest.trim();
  if (expression === '') throw new DockerfileError('ONBUILD requires at least one argument');
  const m = /^(\S+)\s*([\s\S]*)$/.exec(expression) as RegExpExecArray;
  const inner = (m[1] as string).toUpperCase();
  if (inner === 'ONBUILD') throw new DockerfileError("chaining ONBUILD via 'ONBUILD ONBUILD' isn't allowed");
  if (NOT_TRIGGERS.has(inner)) throw new DockerfileError(`${inner} isn't allowed as an ONBUILD trigger`);
  const trigger = parseInstruction(
    { keyword: m[1] as string, original: expression, rest: m[2] ?? '', heredocs: raw.heredocs, range: raw.range },
    escape,
  );
  return { kind: 'ONBUILD', range: raw.range, original: raw.original, expression, trigger };
}

/**
 * `[...]` that parses as a JSON array of strings is exec form. Anything else
 * is shell form, as in BuildKit's parser: `RUN [ "$X" = 1 ] && make` is a
 * shell test, and so is text that only looks like broken JSON. The one error
 * is valid JSON whose elements are not all strings (`CMD ["a", 1]`).
 */
export function maybeJson(text: string, keyword: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw new DockerfileError(`${keyword}: when using JSON array syntax, arrays must be comprised of strings only`);
  }
  return parsed as string[];
}

function commandForm(text: string, keyword: string): CommandForm {
  const json = maybeJson(text, keyword);
  return json ? { json: true, args: json } : { json: false, text };
}

/** ENV/LABEL: `KEY value` (legacy, one pair) or `K=V ...`. Keys and values stay raw. */
function parseNameVal(text: string, keyword: string, escape: string): { pairs: KeyValue[]; legacy?: true } {
  const words = parseWords(text, escape);
  if (words.length === 0) throw new DockerfileError(`${keyword} requires at least one argument`);
  if (!(words[0] as string).includes('=')) {
    const parts = text.split(/[ \t\r\n]+/);
    if (parts.length < 2) throw new DockerfileError(`${keyword} must have two arguments`);
    const m = /^(\S+)[ \t\r\n]+([\s\S]*)$/.exec(text) as RegExpExecArray;
    return { pairs: [{ key: m[1] as string, value: m[2] as string }], legacy: true };
  }
  const pairs = words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) throw new DockerfileError(`syntax error - can't find = in ${JSON.stringify(w)}. Must be of the form: name=value`);
    if (eq === 0) throw new DockerfileError(`${keyword} names can not be blank`);
    return { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
  return { pairs };
}

function parseArgs(text: string, escape: string): Array<{ key: string; value?: string }> {
  const words = parseWords(text, escape);
  if (words.length === 0) throw new DockerfileError('ARG requires at least one argument');
  return words.map((w) => {
    const eq = w.indexOf('=');
    const key = eq < 0 ? w : w.slice(0, eq);
    if (key === '') throw new DockerfileError('ARG names can not be blank');
    return eq < 0 ? { key } : { key, value: w.slice(eq + 1) };
  });
}

function duration(flags: ParsedFlags, name: string): number | undefined {
  const v = flags.strings.get(name);
  if (v === undefined || v === '') return undefined;
  const ns = parseDuration(v);
  if (ns !== 0 && ns < MIN_HEALTH_DURATION_NS) throw new DockerfileError(`HEALTHCHECK --${name} cannot be less than 1ms`);
  return ns;
}

function parseHealthcheck(text: string, flags: ParsedFlags, base: { range: RawInstruction['range']; original: string }): Instruction {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(text);
  if (!m) throw new DockerfileError('HEALTHCHECK requires an argument: NONE or CMD');
  const type = (m[1] as string).toUpperCase();
  const rest = (m[2] ?? '').trim();
  if (type === 'NONE') {
    if (rest !== '') throw new DockerfileError('HEALTHCHECK NONE takes no arguments');
    if (flags.strings.size > 0) throw new DockerfileError('HEALTHCHECK NONE takes no flags');
    return { kind: 'HEALTHCHECK', ...base, test: ['NONE'] };
  }
  if (type !== 'CMD') throw new DockerfileError(`unknown type ${JSON.stringify(m[1])} in HEALTHCHECK (try CMD)`);
  if (rest === '') throw new DockerfileError('HEALTHCHECK CMD requires a command');
  const cmd = commandForm(rest, 'HEALTHCHECK');
  const test = cmd.json ? ['CMD', ...cmd.args] : ['CMD-SHELL', cmd.text];
  const retries = flags.strings.get('retries');
  const fields = {
    interval: duration(flags, 'interval'),
    timeout: duration(flags, 'timeout'),
    startPeriod: duration(flags, 'start-period'),
    startInterval: duration(flags, 'start-interval'),
    retries: retries === undefined ? undefined : parseNonNegativeInt(retries, 'HEALTHCHECK --retries'),
  };
  const defined = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  return { kind: 'HEALTHCHECK', ...base, test, ...defined };
}

function parseCopy(
  keyword: 'COPY' | 'ADD',
  text: string,
  flags: ParsedFlags,
  raw: RawInstruction,
  base: { range: RawInstruction['range']; original: string },
): Instruction {
  const json = maybeJson(text, keyword);
  const words = json ?? splitWhitespace(text);
  if (words.length < 2) throw new DockerfileError(`${keyword} requires at least two arguments, but only ${words.length} provided: ${keyword} <source>... <dest>`);
  const heredocs = new Map(raw.heredocs.map((h) => [h.name, h]));
  const sources: CopySource[] = words.slice(0, -1).map((w) => {
    const m = json ? null : /^<<-?(["']?)(.+)\1$/.exec(w);
    const h = m ? heredocs.get(m[2] as string) : undefined;
    return h ? { heredoc: h } : { path: w };
  });
  const opt = (name: string): Record<string, string> => {
    const v = flags.strings.get(name);
    return v === undefined ? {} : { [name]: v };
  };
  return {
    kind: keyword,
    ...base,
    sources,
    dest: words[words.length - 1] as string,
    ...opt('from'),
    ...opt('chown'),
    ...opt('chmod'),
    ...opt('checksum'),
    excludes: flags.lists.get('exclude') ?? [],
    link: flags.bools.get('link') ?? false,
    parents: flags.bools.get('parents') ?? false,
    keepGitDir: flags.bools.get('keep-git-dir') ?? false,
    ...(flags.bools.has('unpack') ? { unpack: flags.bools.get('unpack') as boolean } : {}),
  };
}
