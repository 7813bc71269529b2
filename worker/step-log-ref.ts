/**
 * A step's full log as the service keeps it: a blob of the service store,
 * listed under the build (redis-keys.ts `logs`), fetched with `buildlite logs`.
 */
import { SERVER_PLACEHOLDER } from '../core/build.js';
import type { Digest } from '../core/digest.js';

/** Where the full log of one step is stored: a blob of the service store. */
export interface StepLogRef {
  readonly digest: Digest;
  readonly size: number;
}

/** The command that fetches a step's full log, as log markers and warnings print it. */
export function logsCommand(buildId: string, vertex?: string): string {
  return `buildlite logs ${buildId} ${vertex ? vertex.replace(/^sha256:/, '').slice(0, 12) : 'VERTEX'} --server ${SERVER_PLACEHOLDER}`;
}
