/** BullMQ job name of a build. */
export const BUILD_JOB = 'build';
/** The queue every worker takes from. */
export const SHARED_QUEUE = 'builds';
/** A worker's own queue: builds routed to it for cache locality (or because their secrets live in its process). */
export function workerQueueName(workerId) {
    return `builds.w.${workerId}`;
}
export const BUILD_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
export const TERMINAL_STATES = new Set(['succeeded', 'failed', 'cancelled']);
/**
 * Redis key layout under one prefix (default `bl`). BullMQ's own keys live
 * under `<prefix>:bull`. Build streams use entry ids `<seq>-0`, so Redis itself
 * refuses an event whose seq is not above the last one: a stale writer cannot
 * add a duplicate or reorder the stream.
 */
export class Keys {
    prefix;
    constructor(prefix = 'bl') {
        this.prefix = prefix;
    }
    get bullPrefix() {
        return `${this.prefix}:bull`;
    }
    build(id) {
        return `${this.prefix}:build:${id}`;
    }
    events(id) {
        return `${this.prefix}:events:${id}`;
    }
    /** Sorted set of build ids by creation time, per client and for all. */
    clientBuilds(client) {
        return `${this.prefix}:client:${client}:builds`;
    }
    get allBuilds() {
        return `${this.prefix}:builds`;
    }
    /** Last worker that built a project (cache locality). */
    project(name) {
        return `${this.prefix}:project:${name}`;
    }
    get workers() {
        return `${this.prefix}:workers`;
    }
    workerAlive(id) {
        return `${this.prefix}:worker:${id}:alive`;
    }
    adoptLock(id) {
        return `${this.prefix}:worker:${id}:adopt`;
    }
    get cancelChannel() {
        return `${this.prefix}:cancel`;
    }
    get controlChannel() {
        return `${this.prefix}:control`;
    }
    /** BullMQ's lock key of a job (its value is the owner's token). */
    jobLock(queue, jobId) {
        return `${this.bullPrefix}:${queue}:${jobId}:lock`;
    }
}
/** Stream entry id of an event: the seq is the id, so XREAD after `<n>-0` resumes after event n. */
export function streamId(seq) {
    return `${seq}-0`;
}
export function seqOfStreamId(id) {
    return Number(id.slice(0, id.indexOf('-')));
}
/** The one field of a stream entry: the event body as JSON, without `seq` (the entry id carries it). */
export const EVENT_FIELD = 'e';
/**
 * Ends a build exactly once: sets the terminal state and appends the terminal
 * event, only if the build is not already terminal and, when a lock key is
 * given, only while `token` still owns the job. The event gets the next free
 * seq at or above ARGV[3]. KEYS: build hash, stream, lock (or '').
 * ARGV: state, event body JSON (no seq: the entry id is the seq), seq, token,
 * finishedAt, extra hash fields as a JSON object, events TTL and record TTL in
 * seconds. Returns the seq written, or 0 when the build was already finished or
 * the job belongs to someone else.
 */
export const FINISH_LUA = `
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'succeeded' or st == 'failed' or st == 'cancelled' then return 0 end
if KEYS[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[4] then return 0 end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local seq = tonumber(ARGV[3])
if last[1] then
  local lastSeq = tonumber(string.match(last[1][1], '^(%d+)-'))
  if lastSeq >= seq then seq = lastSeq + 1 end
end
redis.call('XADD', KEYS[2], tostring(seq) .. '-0', '${EVENT_FIELD}', ARGV[2])
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finishedAt', ARGV[5])
local extra = cjson.decode(ARGV[6])
for k, v in pairs(extra) do redis.call('HSET', KEYS[1], k, v) end
if tonumber(ARGV[7]) > 0 then redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7])) end
if tonumber(ARGV[8]) > 0 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[8])) end
return seq
`;
/** How long a finished build's events stay readable (its record stays longer). */
export const DEFAULT_EVENTS_TTL_S = 3600;
/** How long a finished build's record stays listable. */
export const DEFAULT_RECORD_TTL_S = 7 * 24 * 3600;
export function isBuildState(s) {
    return BUILD_STATES.includes(s);
}
/** Reads a build hash into a record; undefined when absent. */
export function parseBuildRecord(h) {
    if (!h['buildId'] || !h['client'] || !h['state'] || !isBuildState(h['state']))
        return undefined;
    const num = (k) => (h[k] !== undefined && h[k] !== '' ? Number(h[k]) : undefined);
    let error;
    if (h['error']) {
        try {
            error = JSON.parse(h['error']);
        }
        catch {
            error = { code: 'INTERNAL', message: 'unreadable error record', retryable: false };
        }
    }
    const rec = {
        buildId: h['buildId'],
        client: h['client'],
        state: h['state'],
        project: h['project'] ?? '',
        queue: h['queue'] ?? SHARED_QUEUE,
        createdAt: num('createdAt') ?? 0,
        attempts: num('attempts') ?? 0,
        ...(h['worker'] ? { worker: h['worker'] } : {}),
        ...(num('startedAt') !== undefined ? { startedAt: num('startedAt') } : {}),
        ...(num('finishedAt') !== undefined ? { finishedAt: num('finishedAt') } : {}),
        ...(h['imageDigest'] ? { imageDigest: h['imageDigest'] } : {}),
        ...(error ? { error } : {}),
        ...(h['cancelRequested'] === '1' ? { cancelRequested: true } : {}),
    };
    return rec;
}
/** Runs FINISH_LUA; returns the seq written, or 0 when nothing was written. */
export async function finishBuild(redis, keys, a) {
    const r = await redis.eval(FINISH_LUA, 3, keys.build(a.buildId), keys.events(a.buildId), a.owner ? keys.jobLock(a.owner.queue, a.buildId) : '', a.state, JSON.stringify(a.body), a.seq, a.owner?.token ?? '', Date.now(), JSON.stringify(a.extra ?? {}), a.eventsTtlS ?? DEFAULT_EVENTS_TTL_S, a.recordTtlS ?? DEFAULT_RECORD_TTL_S);
    return Number(r);
}
/** Where a stored context tar lives under the shared contexts directory (content-addressed). */
export function contextFile(contextsDir, digest) {
    return `${contextsDir}/sha256/${digest.slice('sha256:'.length)}.tar`;
}
/**
 * Secret values of queued builds, kept in the memory of the one process that
 * runs both the API and a worker (`serve --embedded-worker`): they never touch
 * Redis, disk or logs. A build with secrets is routed to that worker's own
 * queue; if the process dies the values die with it and the build fails.
 */
export class SecretVault {
    holderId;
    byBuild = new Map();
    constructor(holderId) {
        this.holderId = holderId;
    }
    put(buildId, secrets) {
        this.byBuild.set(buildId, secrets);
    }
    get(buildId) {
        return this.byBuild.get(buildId);
    }
    /** Forgets a build's values (and zeroes the buffers) once it has ended. */
    drop(buildId) {
        for (const v of this.byBuild.get(buildId)?.values() ?? [])
            v.fill(0);
        this.byBuild.delete(buildId);
    }
}
//# sourceMappingURL=jobs.js.map