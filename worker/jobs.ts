/**
 * The contract between the API (producer) and the workers: queue and job
 * names, job data, the Redis keys both sides read, and build states. Job data
 * holds references only: the request without secret values, the context
 * digest, the client id. This is the one worker file api/ may import.
 */
import { SERVER_PLACEHOLDER, type BuildRequest } from '../core/build.js';
import type { Digest } from '../core/digest.js';
import type { WireError } from '../core/errors.js';
import { isLimitedReason } from '../core/limits.js';
import { isBuildState, type BuildState } from './build-states.js';
import { EVENT_FIELD, NEXT_SEQ_LUA } from './event-stream.js';
import type { Keys } from './keys.js';

// The Redis key layout and the stream entry format are part of this contract.
export { Keys } from './keys.js';
export { EVENT_FIELD, streamId, seqOfStreamId } from './event-stream.js';
// The shared blob store (contexts, step logs) is part of this contract: the API reaches it only through here.
export type { ServiceStore, StoredBlob, StoredKind, BlobUpload, StoreUseIndex } from './service-store.js';
export { openServiceStore, isRegistryStoreSpec, storedFile } from './context-store.js';
export { RedisStoreIndex } from './store-index.js';
export { sweepServiceStore, startStoreRetention, referencedBlobs, pruneBuildIndex, RETENTION_DEFAULTS, type RetentionPolicy, type RetentionReport, type StoreRetention } from './store-retention.js';

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

/** The request as queued: the context is a digest, secrets are ids only (values never leave the API process). */
export type QueuedRequest = Omit<BuildRequest, 'context'> & { readonly context: { readonly digest: Digest } };

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

// In their own module so store retention can use them without importing this file (which re-exports it).
export { BUILD_STATES, TERMINAL_STATES, isBuildState, type BuildState } from './build-states.js';

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

/** A control request the API broadcasts to every worker; each answers on `replyKey` (a list). */
export type ControlRequest =
  | { readonly op: 'du'; readonly replyKey: string }
  | { readonly op: 'prune'; readonly replyKey: string; readonly all: boolean; readonly keepDurationMs?: number; readonly keepStorageBytes?: number };

export type ControlReply =
  | { readonly worker: string; readonly op: 'du'; readonly total: number; readonly kinds: ReadonlyArray<{ kind: string; count: number; size: number }>; readonly error?: string }
  | { readonly worker: string; readonly op: 'prune'; readonly freedBytes: number; readonly removed: number; readonly error?: string };

/**
 * Ends a build exactly once: sets the terminal state and appends the terminal
 * event, only if the build is not already terminal and, when a lock key is
 * given, only while `token` still owns the job. The event gets the next free
 * seq at or above ARGV[3], and the state's count in the service-wide totals
 * goes up by one (the one place every build ends, so the API's
 * buildlite_builds_total counts each build exactly once, whichever process
 * ended it); so does the count of the limit that ended it, if one did. The
 * build leaves its client's quota state (queued or running, slot, waiting).
 * KEYS: build hash, stream, lock (or ''), totals hash, limited totals hash.
 * ARGV: state, event body JSON (no seq: the entry id is the seq), seq, token,
 * finishedAt, extra hash fields as a JSON object, events TTL and record TTL in
 * seconds, the limit that ended it (or ''), the key prefix, the build id.
 * Returns the seq written, or 0 when the build was already finished or the
 * job belongs to someone else.
 */
export const FINISH_LUA = `${NEXT_SEQ_LUA}
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'succeeded' or st == 'failed' or st == 'cancelled' then return 0 end
if KEYS[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[4] then return 0 end
local seq = nextSeq(KEYS[2], ARGV[3])
redis.call('XADD', KEYS[2], tostring(seq) .. '-0', '${EVENT_FIELD}', ARGV[2])
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finishedAt', ARGV[5])
redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
local extra = cjson.decode(ARGV[6])
for k, v in pairs(extra) do redis.call('HSET', KEYS[1], k, v) end
if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7])) end
if tonumber(ARGV[8]) > 0 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8])) end
if ARGV[9] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[9], 1) end
local client = redis.call('HGET', KEYS[1], 'client')
if client then
  local base = ARGV[10] .. ':client:' .. client
  redis.call('ZREM', base .. ':active', ARGV[11])
  redis.call('HDEL', base .. ':slots', ARGV[11])
  redis.call('ZREM', base .. ':waiting', ARGV[11])
end
return seq
`;

/** How long a finished build's events stay readable (its record stays longer). */
export const DEFAULT_EVENTS_TTL_S = 3600;
/** How long a finished build's record stays listable. */
export const DEFAULT_RECORD_TTL_S = 7 * 24 * 3600;


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
    ...(h['context'] && /^sha256:[a-f0-9]{64}$/.test(h['context']) ? { context: h['context'] as Digest } : {}),
    ...(h['waiting'] ? { waiting: h['waiting'] } : {}),
  };
  return rec;
}

/** The part of an ioredis client `finishBuild` needs (kept structural so jobs.ts stays light). */
export interface EvalClient {
  eval(script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
}

export interface FinishArgs {
  readonly buildId: string;
  readonly state: 'succeeded' | 'failed' | 'cancelled';
  /** The terminal event body (`result` or `error`). */
  readonly body: { readonly type: 'result' | 'error' } & Record<string, unknown>;
  /** The seq it should get at least (the next of this attempt). */
  readonly seq: number;
  /** Only while this token owns the job's lock in `queue`. */
  readonly owner?: { readonly queue: string; readonly token: string };
  readonly extra?: Readonly<Record<string, string>>;
  readonly eventsTtlS?: number;
  readonly recordTtlS?: number;
}

/** Runs FINISH_LUA; returns the seq written, or 0 when nothing was written. */
export async function finishBuild(redis: EvalClient, keys: Keys, a: FinishArgs): Promise<number> {
  const r = await redis.eval(
    FINISH_LUA,
    5,
    keys.build(a.buildId),
    keys.events(a.buildId),
    a.owner ? keys.jobLock(a.owner.queue, a.buildId) : '',
    keys.buildTotals,
    keys.limitedTotals,
    a.state,
    JSON.stringify(a.body),
    a.seq,
    a.owner?.token ?? '',
    Date.now(),
    JSON.stringify(a.extra ?? {}),
    a.eventsTtlS ?? DEFAULT_EVENTS_TTL_S,
    a.recordTtlS ?? DEFAULT_RECORD_TTL_S,
    limitedBy(a.body) ?? '',
    keys.prefix,
    a.buildId,
  );
  return Number(r);
}

/** The limit that ended a build, from its terminal event (`details.limit` of a LIMIT_EXCEEDED error), if any. */
export function limitedBy(body: FinishArgs['body']): string | undefined {
  const error = body.type === 'error' ? (body['error'] as Partial<WireError> | undefined) : undefined;
  const limit = error?.code === 'LIMIT_EXCEEDED' ? error.details?.['limit'] : undefined;
  return isLimitedReason(limit) ? limit : undefined;
}

/** Where the full log of one step is stored: a blob of the service store. */
export interface StepLogRef {
  readonly digest: Digest;
  readonly size: number;
}

/** The command that fetches a step's full log, as log markers and warnings print it. */
export function logsCommand(buildId: string, vertex?: string): string {
  return `buildlite logs ${buildId} ${vertex ? vertex.replace(/^sha256:/, '').slice(0, 12) : 'VERTEX'} --server ${SERVER_PLACEHOLDER}`;
}

/**
 * Secret values of queued builds, kept in the memory of the one process that
 * runs both the API and a worker (`serve --embedded-worker`): they never touch
 * Redis, disk or logs. A build with secrets is routed to that worker's own
 * queue; if the process dies the values die with it and the build fails.
 */
export class SecretVault {
  private readonly byBuild = new Map<string, ReadonlyMap<string, Buffer>>();
  constructor(readonly holderId: string) {}
  put(buildId: string, secrets: ReadonlyMap<string, Buffer>): void {
    this.byBuild.set(buildId, secrets);
  }
  get(buildId: string): ReadonlyMap<string, Buffer> | undefined {
    return this.byBuild.get(buildId);
  }
  /** Forgets a build's values (and zeroes the buffers) once it has ended. */
  drop(buildId: string): void {
    for (const v of this.byBuild.get(buildId)?.values() ?? []) v.fill(0);
    this.byBuild.delete(buildId);
  }
}
