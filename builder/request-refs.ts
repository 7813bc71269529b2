import type { BuildRequest } from '../core/build.js';
import { CodedError } from '../core/errors.js';
import { parseReference } from '../core/reference.js';

/**
 * Every image reference a request names (tags, push targets, cache refs) is
 * parsed before the Dockerfile is even converted, so a typo, or a reference
 * carrying a password, fails the build before any step runs instead of at
 * export time. FROM references are the frontend's to parse. The CLI and the
 * API check the same earlier; this is the check for every other caller.
 */
export function checkRequestReferences(req: Pick<BuildRequest, 'outputs' | 'cacheFrom' | 'cacheTo'>): void {
  const check = (ref: string, where: string) => {
    try {
      parseReference(ref);
    } catch (err) {
      // The reference's own message is already redacted; say which field it came from.
      throw new CodedError('INVALID_ARGUMENT', `${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };
  for (const [i, o] of (req.outputs ?? []).entries()) {
    if ('refs' in o) for (const [j, r] of (o.refs ?? []).entries()) check(r, `outputs[${i}] (${o.type}) refs[${j}]`);
  }
  for (const [field, specs] of [['cacheFrom', req.cacheFrom], ['cacheTo', req.cacheTo]] as const) {
    for (const [i, c] of (specs ?? []).entries()) if (c.type === 'registry') check(c.ref, `${field}[${i}].ref`);
  }
}
