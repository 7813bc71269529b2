import { posix } from 'node:path';
import { BuildliteError } from '../../core/errors.js';
import { parseDigest, type Digest } from '../../core/digest.js';
import type { FileModeSpec } from '../../core/file-mode.js';
import { cleanPath, PathMatcher } from '../../core/ignore.js';
import { isGitUrl } from '../../core/git-url.js';
import { redactUrlCredentials } from '../../core/redact.js';
import type { CopyAction, FileDef, UserSpec } from '../graph/index.js';
import { RULES } from './check-rules.js';
import { DockerfileError } from './errors.js';
import { addGitSource, gitSourceDef } from './git-source.js';
import type { CopyInstruction, Heredoc } from './instructions.js';
import { processWord, type Lookup } from './lexer.js';
import { addVertex, checkedLookup, pushHistory, stepName, type ConvertContext, type StageState } from './state.js';
import { parseChmod, parseUserSpec } from './values.js';

/** COPY/ADD → one file vertex with one copy action per source input. */

/** ADD gives downloaded files these permissions unless --chmod says otherwise. */
const HTTP_FILE_MODE = 0o600;
/** BuildKit's name for the file of a URL whose path names none. */
const UNNAMED = '__unnamed__';
/** Heredoc files are written with these permissions unless --chmod says otherwise. */
const HEREDOC_FILE_MODE = 0o644;

function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}


/** Destination relative to WORKDIR; a trailing `/` (or `.`) means "into this directory". */
export function resolveDest(workdir: string | undefined, dest: string): string {
  const dir = dest.endsWith('/') || dest === '.' || dest.endsWith('/.') || dest === '..' || dest.endsWith('/..');
  const abs = posix.resolve('/', workdir || '/', dest);
  return dir && abs !== '/' ? `${abs}/` : abs;
}

/** The input a `--from` names: a stage (by name or index) or else an image. */
async function fromInput(from: string, st: StageState, ctx: ConvertContext, keyword: string): Promise<Digest> {
  const stage = await ctx.stageRoot(from, st);
  if (stage) return stage.root ?? ctx.emptyRoot();
  try {
    const img = await ctx.resolveImage(from, st.platform);
    return ctx.graph.add({ kind: 'image', ref: img.ref, platform: img.platform }, [], { name: `[internal] image ${from}` });
  } catch (err) {
    if (err instanceof BuildliteError && err.retryable) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new DockerfileError(`${keyword} --from=${from}: no build stage is named ${JSON.stringify(from)}, and it is not an image that could be resolved (${why})`, { cause: err });
  }
}

export async function dispatchCopy(st: StageState, ins: CopyInstruction, ctx: ConvertContext): Promise<void> {
  const name = stepName(st, ins.original);
  const lookup = checkedLookup(st, ctx, ins.range);
  const word = (w: string): string => processWord(w, lookup, { escape: ctx.escape });
  const add = ins.kind === 'ADD';

  const from = ins.from !== undefined ? word(ins.from) : undefined;
  if (from === '') throw new DockerfileError(`${ins.kind} --from needs a stage name, index or image`);
  const chmodText = ins.chmod !== undefined ? word(ins.chmod) : undefined;
  // --link copies into an empty filesystem and stacks the result on the stage. BuildKit links only
  // without --chmod (a plain copy otherwise), and only on top of something (on scratch it is the same copy).
  const link = ins.link && chmodText === undefined && st.root !== null;
  const chownSpec = ins.chown !== undefined ? parseUserSpec(word(ins.chown), '--chown') : undefined;
  const chown: UserSpec | undefined = chownSpec && link ? linkOwner(chownSpec, ins.kind) : chownSpec;
  const chmod = chmodText !== undefined ? parseChmod(chmodText) : undefined;
  const checksumText = ins.checksum !== undefined ? word(ins.checksum) : undefined;
  const excludes = ins.excludes.map(word);
  const destWord = word(ins.dest);
  if (destWord === '') throw new DockerfileError(`${ins.kind}: the destination can not be empty`);
  const dest = resolveDest(st.config.WorkingDir, destWord);
  if (!destWord.startsWith('/') && !st.workdirSet) ctx.checks.report(RULES.CopyRelativeDestination, ins.range, ins.kind, destWord);

  const paths = ins.sources.map((s) => ('path' in s ? { path: word(s.path) } : s));
  // With --parents every source keeps its path inside dest, which is then always a directory (BuildKit).
  if (paths.length > 1 && !dest.endsWith('/') && !ins.parents) {
    throw new DockerfileError(`when using ${ins.kind} with more than one source file, the destination must be a directory and end with a /`);
  }
  if (checksumText !== undefined && !paths.every((p) => 'path' in p && (isUrl(p.path) || isGitUrl(p.path)))) {
    throw new DockerfileError('--checksum can only be used with HTTP(S) and git sources');
  }
  if (from !== undefined && paths.some((p) => 'path' in p && isUrl(p.path))) {
    throw new DockerfileError(`${ins.kind} --from cannot be used with URLs`);
  }

  const inputs: Digest[] = st.root && !link ? [st.root] : [];
  const indexOf = (d: Digest): number => {
    const i = inputs.indexOf(d);
    if (i >= 0) return i;
    inputs.push(d);
    return inputs.length - 1;
  };
  const actions: CopyAction[] = [];
  const common = {
    op: 'copy' as const,
    dest,
    excludes,
    // ADD unpacks local archives unless --unpack=false says not to.
    add: add && ins.unpack !== false,
    ...(chown ? { chown } : {}),
    ...(chmodText !== undefined ? { chmod: chmodText } : {}),
  };
  const push = (src: Digest, path: string, literal: boolean, unpack = false): void => {
    const srcIndex = indexOf(src);
    const last = actions[actions.length - 1];
    if (last && last.src === srcIndex && !!last.literal === literal && !unpack) {
      actions[actions.length - 1] = { ...last, paths: [...last.paths, path] };
      return;
    }
    // Heredoc and URL files have no directories to keep: --parents is for paths of a source tree.
    actions.push({
      ...common,
      src: srcIndex,
      paths: [path],
      ...(literal ? { literal: true } : ins.parents ? { parents: true as const } : {}),
      ...(unpack ? { unpack: true as const } : {}),
    });
  };

  const fromDigest = from !== undefined ? await fromInput(from, st, ctx, ins.kind) : undefined;
  for (const p of paths) {
    if ('heredoc' in p) {
      push(heredocSource(p.heredoc, ctx, st, lookup, name, ins), p.heredoc.name, true);
    } else if (add && isGitUrl(p.path)) {
      // BuildKit: the commit's tree (its root) copied into dest; archives in it are files, not unpacked.
      const def = gitSourceDef(p.path, { ...(checksumText !== undefined ? { checksum: checksumText } : {}), keepGitDir: ins.keepGitDir });
      actions.push({ ...common, add: false, src: indexOf(addGitSource(ctx, def, { name: `${name} (git)`, stage: st.label, range: ins.range })), paths: ['/'], literal: true });
    } else if (add && isUrl(p.path)) {
      push(httpSource(p.path, checksumText, chmod, ctx, st, name, ins), urlFileName(p.path), true, ins.unpack === true);
    } else {
      if (p.path === '') throw new DockerfileError(`${ins.kind}: a source can not be empty`);
      if (fromDigest === undefined && ignoredByContext(p.path, ctx.dockerignore)) ctx.checks.report(RULES.CopyIgnoredFile, ins.range, ins.kind, p.path);
      push(fromDigest ?? ctx.context(), p.path, false);
    }
  }

  const def: FileDef = { kind: 'file', hasRoot: st.root !== null && !link, actions };
  const copied = addVertex(ctx, st, def, inputs, name, ins.range);
  // BuildKit names the stacking step `LINK <instruction>`, with the copy's step number.
  st.root = link && st.root ? addVertex(ctx, st, { kind: 'merge' }, [st.root, copied], name.replace(/^(\[[^\]]*\] )?/, '$1LINK '), ins.range) : copied;
  const flags = `${ins.parents ? '--parents ' : ''}${from !== undefined ? `--from=${from} ` : ''}`;
  const srcText = paths.map((p) => ('heredoc' in p ? `<<${p.heredoc.name}` : p.path)).join(' ');
  pushHistory(st, redactUrlCredentials(`${ins.kind} ${flags}${srcText} ${destWord} # buildkit`), st.root);
}

/**
 * CopyIgnoredFile, as BuildKit decides it: only when no `!` pattern could
 * bring a path back, and the context root only when everything is ignored.
 */
function ignoredByContext(source: string, patterns: readonly string[]): boolean {
  if (patterns.length === 0 || patterns.some((p) => p.startsWith('!'))) return false;
  const clean = cleanPath(source.replace(/^\/+/, '')) || '.';
  if (clean === '.' || clean === '/') return patterns.some((p) => p === '*' || p === '**' || p === '**/*');
  return new PathMatcher(patterns).matches(clean);
}

/**
 * The owner of a linked copy: nothing of the image is there to read /etc/passwd
 * from, so only numbers (and root, which is 0 everywhere) can name it. BuildKit
 * fails such a copy late with "invalid user index"; this says why, at the line.
 */
function linkOwner(spec: UserSpec, keyword: string): UserSpec {
  const id = (name: string, what: string): string => {
    if (/^[0-9]+$/.test(name)) return name;
    if (name === 'root') return '0';
    throw new DockerfileError(`${keyword} --link --chown=${spec.user}${spec.group !== undefined ? `:${spec.group}` : ''}: a linked copy is made apart from the image, where no ${what} database can name ${JSON.stringify(name)}; give a numeric id (or drop --link)`);
  };
  return spec.group !== undefined ? { user: id(spec.user, 'user'), group: id(spec.group, 'group') } : { user: id(spec.user, 'user') };
}

function heredocSource(h: Heredoc, ctx: ConvertContext, st: StageState, lookup: Lookup, name: string, ins: CopyInstruction): Digest {
  // Heredoc bodies expand variables only: quotes and escapes stay as written.
  const data = h.expand ? processWord(h.data, lookup, { escape: ctx.escape, rawQuotes: true, rawEscapes: true }) : h.data;
  const d = ctx.graph.add(
    { kind: 'file', hasRoot: false, actions: [{ op: 'mkfile', path: `/${h.name}`, data, mode: HEREDOC_FILE_MODE }] },
    [],
    { name: `${name} (heredoc ${h.name})`, stage: st.label, range: ins.range },
  );
  return d;
}

function urlFileName(url: string): string {
  let path = url;
  try {
    path = new URL(url).pathname;
  } catch {
    throw new DockerfileError(`ADD: invalid URL ${JSON.stringify(url)}`);
  }
  return posix.basename(path) || UNNAMED;
}

function httpSource(url: string, checksum: string | undefined, chmod: FileModeSpec | undefined, ctx: ConvertContext, st: StageState, name: string, ins: CopyInstruction): Digest {
  let digest: Digest | undefined;
  if (checksum !== undefined) {
    try {
      digest = parseDigest(checksum);
    } catch {
      throw new DockerfileError(`ADD --checksum=${checksum}: want sha256:<64 hex digits>`);
    }
  }
  const filename = urlFileName(url);
  // A symbolic --chmod changes the fetched file's own mode: the copy applies it, once.
  // A URL that names no file: the server's Content-Disposition may (HttpSourceDef.nameFromResponse).
  const d = ctx.graph.add(
    { kind: 'http', url, ...(digest ? { checksum: digest } : {}), filename, ...(filename === UNNAMED ? { nameFromResponse: true as const } : {}), mode: chmod?.kind === 'octal' ? chmod.mode : HTTP_FILE_MODE },
    [],
    { name: `${name} (${redactUrlCredentials(url)})`, stage: st.label, range: ins.range },
  );
  return d;
}
