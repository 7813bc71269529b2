import { writeFile } from 'node:fs/promises';
import type { BuildResult } from '../core/build.js';
import type { WireError } from '../core/errors.js';
import type { RemoteBuildRef } from './build-ref.js';
import type { ParsedBuild } from './parsed-build.js';

/**
 * `--metadata-file`: buildx's keys where they exist, so scripts written for
 * buildx keep working, plus ours: `build` (a service build's id and server),
 * `cache`, and `error` (its stable code and message) when the build failed.
 */
export function metadataOf(p: ParsedBuild, outcome: { result?: BuildResult; error?: WireError }, remote?: RemoteBuildRef): Record<string, unknown> {
  const names = (p.request.outputs ?? []).flatMap((o) => ('refs' in o && o.refs ? o.refs : []));
  const { result, error } = outcome;
  return {
    ...(result
      ? {
          'containerimage.digest': result.imageDigest,
          ...(result.configDigest ? { 'containerimage.config.digest': result.configDigest } : {}),
          ...(result.platforms ? { platforms: result.platforms } : {}),
        }
      : {}),
    'image.name': [...new Set(names)].join(','),
    ...(remote ? { build: { id: remote.buildId, server: remote.server } } : {}),
    pushed: result?.pushed ?? [],
    outputs: (p.request.outputs ?? []).map((o) => ({ type: o.type, ...('dest' in o ? { dest: o.dest } : {}), ...('refs' in o && o.refs ? { refs: o.refs } : {}) })),
    ...(result ? { cache: { hits: result.cache.hits, misses: result.cache.misses } } : {}),
    ...(error || !result ? { error: errorOf(error) } : {}),
  };
}

/** The error's stable code and message, and the operator limit it hit (`limit`, `value`) when it names one. */
function errorOf(error: WireError | undefined): Record<string, string | number> {
  if (!error) return { code: 'CANCELLED', message: 'the build did not finish' };
  const { limit, value } = error.details ?? {};
  return { code: error.code, message: error.message, ...(typeof limit === 'string' && typeof value === 'number' ? { limit, value } : {}) };
}

export async function writeMetadata(file: string, p: ParsedBuild, outcome: { result?: BuildResult; error?: WireError }, remote?: RemoteBuildRef): Promise<void> {
  await writeFile(file, `${JSON.stringify(metadataOf(p, outcome, remote), null, 2)}\n`);
}
