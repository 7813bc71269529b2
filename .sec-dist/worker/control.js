import { diskUsage, prune, USAGE_KINDS } from '../cache/index.js';
/** How long an unread reply list lives: the API waits seconds, not minutes. */
const REPLY_TTL_S = 60;
/**
 * Answers a control request broadcast by the API (disk usage, prune) for this
 * worker's state root and pushes the answer onto the request's reply list.
 * Covers the content store and the cache index (snapshots and cache mounts
 * are reclaimed by the builder's own sweep and are not listed here yet).
 */
export async function handleControl(builder, redis, workerId, req) {
    if (!/^[\w:.-]{1,200}$/.test(req.replyKey))
        return;
    const parts = { store: builder.store, index: builder.index };
    let reply;
    try {
        if (req.op === 'du') {
            const du = await diskUsage(parts);
            reply = { worker: workerId, op: 'du', total: du.total, kinds: USAGE_KINDS.map((kind) => ({ kind, count: du.byKind[kind].count, size: du.byKind[kind].size })) };
        }
        else {
            const r = await prune(parts, {
                all: req.all,
                ...(req.keepDurationMs ? { keepDurationMs: req.keepDurationMs } : {}),
                ...(req.keepStorageBytes ? { keepStorageBytes: req.keepStorageBytes } : {}),
            });
            reply = { worker: workerId, op: 'prune', freedBytes: r.freedBytes, removed: r.removed.length };
        }
    }
    catch (err) {
        reply = req.op === 'du'
            ? { worker: workerId, op: 'du', total: 0, kinds: [], error: err instanceof Error ? err.message : String(err) }
            : { worker: workerId, op: 'prune', freedBytes: 0, removed: 0, error: err instanceof Error ? err.message : String(err) };
    }
    await redis.multi().rpush(req.replyKey, JSON.stringify(reply)).expire(req.replyKey, REPLY_TTL_S).exec();
}
//# sourceMappingURL=control.js.map