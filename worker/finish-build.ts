/**
 * The one way a build ends, for every process that may end it (a worker, the
 * API cancelling a queued build, a worker taking over a dead one's build).
 */
import type { WireError } from '../core/errors.js';
import { isLimitedReason } from '../core/limits.js';
import { EVENT_FIELD, NEXT_SEQ_LUA } from './event-stream.js';
import type { Keys } from './redis-keys.js';

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

/** The part of an ioredis client `finishBuild` needs (structural, so the API's quota code needs no ioredis type from here). */
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
