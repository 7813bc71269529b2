/**
 * Client quotas at submit, kept in Redis so that every API process sees the
 * same counts:
 *
 * - the submission rate: a sliding window of the last 60 s per client (a
 *   sorted set of submit times); the N+1st submit inside it is refused with
 *   the time until the oldest one leaves the window;
 * - the client's builds queued or running (`active`, a sorted set of build
 *   ids): under policy `refuse`, a submit past `maxConcurrentBuilds` is
 *   refused. Builds leave it in FINISH_LUA, the one place every build ends.
 *
 * Under policy `queue` a submit is never refused for concurrency: the worker
 * holds the build back until a slot of its client is free (worker/client-slots.ts).
 * Both scripts take the time from Redis, so API processes with skewed clocks agree.
 */
import { randomBytes } from 'node:crypto';
import { formatSeconds } from '../core/duration.js';
import { LimitError } from '../core/limit-error.js';
import type { ClientQuota } from '../core/limits.js';
import type { EvalClient } from '../worker/finish-build.js';
import type { Keys } from '../worker/redis-keys.js';

const WINDOW_MS = 60_000;

/**
 * A member of `active` whose build has no record yet is a submit in flight
 * (admitted, record being written) or one that died between the two: it is
 * forgotten only after this long.
 */
const UNRECORDED_GRACE_MS = 60_000;

/**
 * KEYS: the client's submits. ARGV: window ms, max, member. Returns 0 and
 * counts the submit, or the ms until one more fits in the window.
 */
const RATE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n >= max then
  local edge = redis.call('ZRANGE', KEYS[1], n - max, n - max, 'WITHSCORES')
  return math.max(1, tonumber(edge[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
`;

/**
 * KEYS: the client's active set. ARGV: build id ('' = count only), max,
 * refuse ('1' or '0'), key prefix, grace ms. At the limit, first forgets
 * members whose build ended (or was never recorded, past the grace).
 * Returns {admitted 1|0, builds queued or running before this one}.
 */
const ADMIT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n >= max then
  local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    local st = redis.call('HGET', ARGV[4] .. ':build:' .. members[i], 'state')
    if st == 'succeeded' or st == 'failed' or st == 'cancelled' or (not st and tonumber(members[i + 1]) < now - tonumber(ARGV[5])) then
      redis.call('ZREM', KEYS[1], members[i])
    end
  end
  n = redis.call('ZCARD', KEYS[1])
end
if ARGV[3] == '1' and n >= max then return {0, n} end
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
return {1, n}
`;

/** Counts a submit of `client` in its window, or refuses it (LimitError `rate`, saying when to retry). */
export async function checkSubmitRate(redis: EvalClient, keys: Keys, client: string, quota: ClientQuota): Promise<void> {
  const max = quota.maxSubmissionsPerMinute;
  const waitMs = Number(await redis.eval(RATE_LUA, 1, keys.clientSubmits(client), WINDOW_MS, max, `${Date.now()}-${randomBytes(6).toString('hex')}`));
  if (waitMs > 0) {
    // Whole seconds, rounded up: retrying at the time said must succeed.
    const retryS = Math.ceil(waitMs / 1000);
    throw new LimitError('rate', max, `client ${client} submitted ${max} builds in the last minute: the limit is ${max} a minute; retry in ${formatSeconds(retryS * 1000)}`, { retryAfterMs: retryS * 1000 });
  }
}

/**
 * Admits a build into its client's queued-or-running set; under policy
 * `refuse`, refuses it at the limit (LimitError `concurrency`). Without a
 * build id it only checks (before an upload, so a refused client uploads nothing).
 */
export async function admitBuild(redis: EvalClient, keys: Keys, client: string, quota: ClientQuota, buildId = ''): Promise<void> {
  const max = quota.maxConcurrentBuilds;
  const refuse = quota.overQuota === 'refuse';
  const [admitted, n] = (await redis.eval(ADMIT_LUA, 1, keys.clientActive(client), buildId, max, refuse ? '1' : '0', keys.prefix, UNRECORDED_GRACE_MS)) as [number, number];
  if (admitted !== 1) throw new LimitError('concurrency', max, `client ${client} has ${n} build${n === 1 ? '' : 's'} queued or running: the limit is ${max}`);
}

/** Takes a build back out of the set when its submit failed after admission. */
export async function unadmitBuild(redis: { zrem(key: string, member: string): Promise<unknown> }, keys: Keys, client: string, buildId: string): Promise<void> {
  await redis.zrem(keys.clientActive(client), buildId);
}
