import path from 'node:path';
import { BuildliteError, type ErrorCode } from './errors.js';

/**
 * `.dockerignore` and `COPY --exclude` matching with Docker's semantics
 * (moby/patternmatcher): patterns are cleaned paths relative to the context
 * root, `*` and `?` never cross `/`, `**` spans any number of segments, `[...]`
 * is a character class, `\` escapes. `!` re-includes. The last pattern that
 * matches wins, and a pattern that matches a parent directory matches
 * everything under it.
 */

export class InvalidPatternError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
  constructor(
    readonly pattern: string,
    reason: string,
  ) {
    super(`invalid exclude pattern ${JSON.stringify(pattern)}: ${reason}`);
  }
  override details() {
    return { pattern: this.pattern };
  }
}

const UTF8_BOM = '\ufeff';

/** Parse `.dockerignore` text into patterns, in file order (negations kept as `!pattern`). */
export function parseIgnoreFile(text: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (i === 0 && line.startsWith(UTF8_BOM)) line = line.slice(1);
    // Docker checks for comments before trimming: "  # x" is a pattern.
    if (line.startsWith('#')) continue;
    let pattern = line.trim();
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}

/** Go's filepath.Clean for slash paths: no `.`, resolved `..`, no trailing `/`; empty becomes `.`. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

interface Pattern {
  readonly source: string;
  readonly exclusion: boolean;
  readonly regex: RegExp;
  /** The cleaned pattern split on `/`, for pruning walks. */
  readonly segments: readonly string[];
}

export class PathMatcher {
  private readonly patterns: readonly Pattern[];
  /** True when some pattern is a `!` re-inclusion. */
  readonly hasExclusions: boolean;

  constructor(patterns: readonly string[]) {
    const list: Pattern[] = [];
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '') continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p.startsWith('!')) {
        if (p.length === 1) throw new InvalidPatternError(raw, 'a lone "!" excludes nothing');
        exclusion = true;
        p = cleanPath(p.slice(1));
      }
      // Paths we match are relative; a leading `/` (allowed in --exclude) means the same root.
      if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
      list.push({ source: p, exclusion, regex: compilePattern(raw, p), segments: p.split('/') });
    }
    this.patterns = list;
    this.hasExclusions = list.some((p) => p.exclusion);
  }

  /** True when no pattern was given: callers skip matching entirely. */
  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** True when `relPath` (relative to the root, `/`-separated) is excluded. */
  matches(relPath: string): boolean {
    const file = normaliseRel(relPath);
    if (file === '') return false;
    const parts = file.split('/');
    let matched = false;
    for (const pat of this.patterns) {
      // An inclusion cannot change an already excluded result, nor a re-inclusion an included one.
      if (pat.exclusion !== matched) continue;
      let hit = pat.regex.test(file);
      for (let i = 1; !hit && i < parts.length; i++) hit = pat.regex.test(parts.slice(0, i).join('/'));
      if (hit) matched = !pat.exclusion;
    }
    return matched;
  }

  /**
   * False when nothing under `relDir` can be included, so a walk may skip it:
   * the dir is excluded and no `!` pattern could re-include a path below it.
   */
  mayIncludeUnder(relDir: string): boolean {
    const dir = normaliseRel(relDir);
    if (dir === '' || !this.matches(dir)) return true;
    const dirParts = dir.split('/');
    return this.patterns.some((p) => p.exclusion && couldMatchBelow(p.segments, dirParts));
  }

  /**
   * False when no (non-`!`) pattern can match `relDir` or anything under it,
   * so a walk looking for matches (`COPY --parents` includes) may skip it.
   */
  mayMatchUnder(relDir: string): boolean {
    const dirParts = normaliseRel(relDir).split('/');
    return this.patterns.some((p) => !p.exclusion && couldMatchBelow(p.segments, dirParts));
  }
}

/** Whether a pattern could match `dir/…` (or an ancestor of it, which re-includes everything below). */
function couldMatchBelow(segments: readonly string[], dirParts: readonly string[]): boolean {
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg.includes('**')) return true;
    if (i >= dirParts.length) return true;
    if (!compilePattern(seg, seg).test(dirParts[i]!)) return false;
  }
  return true;
}

function normaliseRel(p: string): string {
  const c = cleanPath(p.replace(/^\/+/, ''));
  return c === '.' ? '' : c;
}

/** Characters that are special in a regex but plain in Docker's patterns. */
const REGEX_LITERALS = new Set(['.', '+', '(', ')', '|', '{', '}', '$', '/']);

/** Translate a cleaned pattern to an anchored regex, as patternmatcher does. */
function compilePattern(raw: string, p: string, plainStars = false): RegExp {
  let re = '^';
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    if (inClass) {
      if (ch === '\\') {
        const next = p[i + 1];
        if (next === undefined) throw new InvalidPatternError(raw, 'trailing backslash');
        re += `\\${next}`;
        i++;
      } else if (ch === ']') {
        re += ']';
        inClass = false;
      } else if (ch === '[') {
        re += '\\[';
      } else {
        re += ch;
      }
      continue;
    }
    if (ch === '*') {
      if (p[i + 1] === '*' && !plainStars) {
        i++;
        if (p[i + 1] === '/') i++;
        re += i + 1 >= p.length ? '.*' : '(.*/)?';
      } else {
        re += '[^/]*';
      }
    } else if (ch === '?') {
      re += '[^/]';
    } else if (ch === '\\') {
      const next = p[i + 1];
      if (next === undefined) throw new InvalidPatternError(raw, 'trailing backslash');
      re += escapeRegex(next);
      i++;
    } else if (ch === '[') {
      inClass = true;
      // `[^…]` and `[!…]`-free Go classes: a negated class must still not match `/`.
      if (p[i + 1] === '^') {
        re += '[^/';
        i++;
      } else {
        re += '[';
      }
    } else if (REGEX_LITERALS.has(ch) || ch === ']' || ch === '^') {
      re += escapeRegex(ch);
    } else {
      re += ch;
    }
  }
  if (inClass) throw new InvalidPatternError(raw, 'unterminated character class');
  re += '$';
  try {
    return new RegExp(re, 's');
  } catch (err) {
    throw new InvalidPatternError(raw, err instanceof Error ? err.message : String(err));
  }
}

function escapeRegex(ch: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(ch) ? `\\${ch}` : ch;
}

const segmentCache = new Map<string, RegExp>();

/** One path segment's pattern (`*`, `?`, classes, escapes), as Go's filepath.Match reads it. */
export function segmentRegex(seg: string): RegExp {
  let r = segmentCache.get(seg);
  if (!r) {
    // Go's filepath.Match has no `**`: two stars are two `*`.
    r = compilePattern(seg, seg, true);
    if (segmentCache.size > 1024) segmentCache.clear();
    segmentCache.set(seg, r);
  }
  return r;
}

/** True when a path segment holds glob syntax (`*`, `?`, `[`); a `\`-escaped char does not count. */
export function hasWildcards(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '\\') i++;
    else if (ch === '*' || ch === '?' || ch === '[') return true;
  }
  return false;
}

/** Go's filepath.Match: the whole `name` against `pattern`, segment by segment (`*` never crosses `/`). */
export function globMatch(pattern: string, name: string): boolean {
  const ps = pattern.split('/');
  const ns = name.split('/');
  if (ps.length !== ns.length) return false;
  return ps.every((seg, i) => segmentRegex(seg).test(ns[i]!));
}
