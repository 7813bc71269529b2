import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { hasWildcards, segmentRegex, type PathMatcher } from '../../../core/ignore.js';
import { resolveInRoot } from '../../../core/safe-path.js';
import { FileOpError, SourceNotFoundError } from './base.js';

/** One COPY/ADD source after wildcard expansion, with top-level links followed inside the source root. */
export interface ResolvedSource {
  /** The path as written in the Dockerfile (for errors). */
  readonly written: string;
  /** Host path, inside the source root. */
  readonly host: string;
  /** `host` relative to the source root ('' for the root itself): what `.dockerignore` is matched against. */
  readonly rel: string;
  /** Base name a non-directory gets inside a directory destination: the name as written or matched, not the link target's. */
  readonly name: string;
  /** Prefix for `--exclude` matching of this source's contents ('' when they are matched relative to the source itself). */
  readonly excludeBase: string;
}

export interface SourceFilters {
  /** `.dockerignore` of the context: ignored paths were never sent, so they do not exist. */
  readonly ignore: PathMatcher;
  /** `--exclude`: applies to what a directory or a wildcard brings, never to a source named exactly. */
  readonly exclude: PathMatcher;
}

/**
 * Expand and resolve the sources of one action, in order. A wildcard
 * (Go filepath.Match per segment) is expanded under its fixed prefix without
 * following links; each source, matched or named, is then followed within
 * the source root (BuildKit's FollowPaths). A source that does not exist, or a
 * pattern that matches nothing, is an error naming it.
 */
export async function resolveSources(
  srcRoot: string,
  paths: readonly string[],
  literal: boolean,
  filters: SourceFilters,
  signal?: AbortSignal,
): Promise<ResolvedSource[]> {
  const out: ResolvedSource[] = [];
  for (const written of paths) {
    signal?.throwIfAborted();
    const found = await expandSource(srcRoot, written, literal, filters);
    if (found.length === 0) throw new FileOpError(`COPY failed: no source files were specified: pattern ${JSON.stringify(written)} matches nothing`, written, 'NOT_FOUND');
    out.push(...found);
  }
  return out;
}

/** One source as `resolveSources` reads it, except that a wildcard may match nothing (`COPY --parents` allows that). */
export async function expandSource(srcRoot: string, written: string, literal: boolean, filters: SourceFilters): Promise<ResolvedSource[]> {
  const segs = written.split('/').filter((s) => s !== '' && s !== '.');
  const wild = literal ? -1 : segs.findIndex(hasWildcards);
  if (wild < 0) return [await resolveNamed(srcRoot, written, segs, filters)];
  const prefix = segs.slice(0, wild).join('/');
  const baseHost = await resolveInRoot(srcRoot, prefix, true);
  const matches: string[] = [];
  await walkPattern(baseHost, segs.slice(wild), 0, '', matches, srcRoot, filters);
  const out: ResolvedSource[] = [];
  for (const relToBase of matches) {
    const host = await resolveInRoot(srcRoot, path.relative(srcRoot, path.join(baseHost, relToBase)), true);
    if (!(await exists(host))) throw new SourceNotFoundError(written);
    out.push({ written, host, rel: path.relative(srcRoot, host), name: path.basename(relToBase), excludeBase: relToBase });
  }
  return out;
}

async function resolveNamed(srcRoot: string, written: string, segs: string[], filters: SourceFilters): Promise<ResolvedSource> {
  const host = await resolveInRoot(srcRoot, unescapeGlob(segs.join('/')), true);
  const st = await lstat(host).catch(() => undefined);
  if (!st) throw new SourceNotFoundError(written);
  const rel = path.relative(srcRoot, host);
  const lexical = path.posix.normalize(segs.map(unescapeGlob).join('/') || '.').replace(/^(\.\.\/)+|^\.\.$/g, '');
  for (const r of new Set([rel, lexical === '.' ? '' : lexical])) {
    if (r !== '' && filters.ignore.matches(r) && !(st.isDirectory() && filters.ignore.mayIncludeUnder(r))) {
      throw new SourceNotFoundError(written);
    }
  }
  const name = path.posix.basename(lexical) || path.basename(host);
  return { written, host, rel, name, excludeBase: '' };
}

/** `\*` in a source names a literal `*` (Go's escaping); elsewhere the backslash is kept. */
function unescapeGlob(p: string): string {
  return p.replace(/\\([*?[\]\\])/g, '$1');
}

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined)) !== undefined;
}

/**
 * Collect, in lexical order, paths under `dir` whose segments match `pattern`
 * one to one. Links are not followed while matching, and a matched directory is
 * not searched further, as filepath.Walk with SkipDir does.
 */
async function walkPattern(
  dir: string,
  pattern: readonly string[],
  depth: number,
  relPrefix: string,
  out: string[],
  srcRoot: string,
  filters: SourceFilters,
): Promise<void> {
  const seg = pattern[depth]!;
  const last = depth === pattern.length - 1;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  names.sort();
  const re = segmentRegex(seg);
  for (const name of names) {
    if (!re.test(name)) continue;
    const host = path.join(dir, name);
    const st = await lstat(host).catch(() => undefined);
    if (!st) continue;
    const rootRel = path.relative(srcRoot, host);
    if (filters.ignore.matches(rootRel) && !(st.isDirectory() && filters.ignore.mayIncludeUnder(rootRel))) continue;
    const rel = relPrefix === '' ? name : `${relPrefix}/${name}`;
    if (last) {
      if (filters.exclude.matches(rel) && !(st.isDirectory() && filters.exclude.mayIncludeUnder(rel))) continue;
      out.push(rel);
    } else if (st.isDirectory()) {
      await walkPattern(host, pattern, depth + 1, rel, out, srcRoot, filters);
    }
  }
}
