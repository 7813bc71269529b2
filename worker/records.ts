/**
 * What the build and worker hashes in Redis hold (the key layout:
 * redis-keys.ts). The API writes a build's record at submit and reads both
 * kinds to answer clients; the workers update them as builds run.
 */
import { isDigest, type Digest } from '../core/digest.js';
import type { WireError } from '../core/errors.js';
import { isBuildState, type BuildState } from './build-states.js';
import { SHARED_QUEUE } from './jobs.js';

/** What the build record hash holds (all values strings in Redis). */
export interface BuildRecord {
  readonly buildId: string;
  readonly client: string;
  readonly state: BuildState;
  readonly project: string;
  readonly queue: string;
  readonly worker?: string;
  readonly createdAt: number;
  readonly startedAt?: number;
  readonly finishedAt?: number;
  readonly imageDigest?: string;
  readonly error?: WireError;
  readonly attempts: number;
  readonly cancelRequested?: boolean;
  /** The build's context (recorded since store retention: older records only have it in the job data). */
  readonly context?: Digest;
  /** Why a queued build has not started (its client is at its concurrency quota); cleared when it starts. */
  readonly waiting?: string;
}

export interface WorkerRecord {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly concurrency: number;
  readonly active: number;
  readonly startedAt: number;
  readonly lastSeen: number;
  /** OS/ARCH[/VARIANT] the worker runs natively. */
  readonly platform?: string;
  /** Every platform it offers to build (its own, and those it runs under emulation), e.g. `linux/amd64`, `linux/arm64`. */
  readonly platforms?: readonly string[];
  /** Ids of the builds running on it. */
  readonly builds?: readonly string[];
  /** Bytes of its build cache when last measured. */
  readonly cacheBytes?: number;
}

/** Reads a build hash into a record; undefined when absent. */
export function parseBuildRecord(h: Record<string, string>): BuildRecord | undefined {
  if (!h['buildId'] || !h['client'] || !h['state'] || !isBuildState(h['state'])) return undefined;
  const num = (k: string) => (h[k] !== undefined && h[k] !== '' ? Number(h[k]) : undefined);
  let error: WireError | undefined;
  if (h['error']) {
    try {
      error = JSON.parse(h['error']) as WireError;
    } catch {
      error = { code: 'INTERNAL', message: 'unreadable error record', retryable: false };
    }
  }
  const rec: BuildRecord = {
    buildId: h['buildId'],
    client: h['client'],
    state: h['state'],
    project: h['project'] ?? '',
    queue: h['queue'] ?? SHARED_QUEUE,
    createdAt: num('createdAt') ?? 0,
    attempts: num('attempts') ?? 0,
    ...(h['worker'] ? { worker: h['worker'] } : {}),
    ...(num('startedAt') !== undefined ? { startedAt: num('startedAt')! } : {}),
    ...(num('finishedAt') !== undefined ? { finishedAt: num('finishedAt')! } : {}),
    ...(h['imageDigest'] ? { imageDigest: h['imageDigest'] } : {}),
    ...(error ? { error } : {}),
    ...(h['cancelRequested'] === '1' ? { cancelRequested: true } : {}),
    ...(isDigest(h['context']) ? { context: h['context'] } : {}),
    ...(h['waiting'] ? { waiting: h['waiting'] } : {}),
  };
  return rec;
}
