import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { cleanPath, hasWildcards, PathMatcher } from '../../../core/ignore.js';
import { expandSource, resolveSources, type SourceFilters } from './sources.js';
import { FileOpError } from './base.js';

/**
 * `COPY --parents`: each source keeps its path below a base directory, as
 * `cp --parents` and rsync's `--relative` do. The base is the source root, or
 * what comes before a `/./` pivot (`a/./b/c` keeps `b/c`); what follows is a
 * pattern in `.dockerignore` syntax (`**` spans directories) matched below the
 * base. As in BuildKit, a source without wildcards must exist, one with
 * wildcards may match nothing, and the base itself may be a wildcard.
 */
export interface ParentsSource {
  /** The source as written, for errors. */
  readonly written: string;
  /** The base directory, inside the source root. */
  readonly host: string;
  /** `host` relative to the source root: what `.dockerignore` is matched against. */
  readonly rel: string;
  /** What is taken below the base, with its path; undefined: everything. */
  readonly include?: PathMatcher;
  /** The pattern as matched, for cache keys. */
  readonly pattern: string;
}

/** `a/b/./c/*.txt` → base `a/b`, pattern `c/*.txt`; without a pivot the base is the root. */
export function splitPivot(written: string): { base: string; pattern: string } {
  const at = written.indexOf('/./');
  const base = at < 0 ? '/' : written.slice(0, at) || '/';
  const rest = at < 0 ? written : written.slice(at + 3);
  // Cleaned as a path from the base: `..` cannot climb above it, `.` and `//` vanish.
  return { base, pattern: cleanPath(`/${rest}`).replace(/^\/+/, '') };
}

export async function resolveParentsSources(srcRoot: string, paths: readonly string[], filters: SourceFilters, signal?: AbortSignal): Promise<ParentsSource[]> {
  const out: ParentsSource[] = [];
  for (const written of paths) {
    signal?.throwIfAborted();
    const { base, pattern } = splitPivot(written);
    // A plain path must be there: resolving it throws the usual "not found", naming it.
    if (!hasWildcards(base) && !hasWildcards(pattern)) await resolveSources(srcRoot, [path.posix.join(base, pattern)], false, filters, signal);
    for (const b of await expandSource(srcRoot, base, false, filters)) {
      if (!(await lstat(b.host)).isDirectory()) {
        throw new FileOpError(`COPY --parents ${JSON.stringify(written)}: ${JSON.stringify(b.rel || '/')} is not a directory`, written);
      }
      out.push({ written, host: b.host, rel: b.rel, pattern, ...(pattern === '' ? {} : { include: new PathMatcher([pattern]) }) });
    }
  }
  return out;
}
