/**
 * The queue contract between the API (producer) and the workers: queue and
 * job names, and the job data. Job data holds references only: the request
 * without secret values, the context digest (or URL), the client id. The rest of what
 * both sides share has a file of its own (docs/architecture.md, "api reaches
 * the worker only through the contract"): the Redis key layout
 * (redis-keys.ts), the build and worker records (records.ts), build states
 * (build-states.ts), the event stream format (event-stream.ts), the script
 * that ends a build (finish-build.ts), control messages
 * (control-messages.ts), step log references (step-log-ref.ts) and the
 * secret vault (secret-vault.ts).
 */
import type { BuildRequest } from '../core/build.js';
import type { Digest } from '../core/digest.js';

/** BullMQ job name of a build. */
export const BUILD_JOB = 'build';

/** The queue every worker takes from. */
export const SHARED_QUEUE = 'builds';

/** A worker's own queue: builds routed to it for cache locality (or because their secrets live in its process). */
export function workerQueueName(workerId: string): string {
  return `builds.w.${workerId}`;
}

/** The stored contexts a request's named contexts use (directories and OCI layouts uploaded with PutContext). */
export function namedContextDigests(req: Pick<BuildRequest, 'namedContexts'>): Digest[] {
  const out: Digest[] = [];
  for (const c of Object.values(req.namedContexts ?? {})) {
    if ((c.type === 'local' || c.type === 'oci-layout') && 'digest' in c.source) out.push(c.source.digest);
  }
  return out;
}

/**
 * A queued build's context: an uploaded one by digest, or a URL the worker
 * fetches (a git URL or an http(s) tarball or Dockerfile, checked by the API,
 * never carrying credentials), with the Dockerfile's path inside it.
 */
export type QueuedContext = { readonly digest: Digest } | { readonly url: string; readonly file: string };

/** The request as queued: the context is a digest or a URL, secrets are ids only (values never leave the API process). */
export type QueuedRequest = Omit<BuildRequest, 'context'> & { readonly context: QueuedContext };

export interface BuildJobData {
  readonly buildId: string;
  readonly client: string;
  readonly project: string;
  readonly request: QueuedRequest;
  /** Set when the request carries secrets: only the embedded worker of that API process holds their values. */
  readonly secretsHolder?: string;
  /**
   * The client's concurrency quota: a worker starts the build only while
   * fewer of the client's builds run (see client-slots.ts); else the job waits.
   */
  readonly quota?: { readonly maxConcurrentBuilds: number };
}
