import type { Redis } from 'ioredis';
import { diskUsage, prune, USAGE_KINDS } from '../cache/index.js';
import type { Builder } from '../builder/index.js';
import type { ControlReply, ControlRequest } from './control-messages.js';

/** How long an unread reply list lives: the API waits seconds, not minutes. */
const REPLY_TTL_S = 60;

/**
 * Answers a control request broadcast by the API (disk usage, prune) for this
 * worker's state root and pushes the answer onto the request's reply list.
 */
export async function handleControl(builder: Builder, redis: Redis, workerId: string, req: ControlRequest): Promise<void> {
  if (!/^[\w:.-]{1,200}$/.test(req.replyKey)) return;
  // The same parts the GC loop enforces its cap on: blobs, records, snapshots, cache mounts, leases.
  const parts = builder.cacheParts();
  let reply: ControlReply;
  try {
    if (req.op === 'du') {
      const du = await diskUsage(parts);
      reply = { worker: workerId, op: 'du', total: du.total, kinds: USAGE_KINDS.map((kind) => ({ kind, count: du.byKind[kind].count, size: du.byKind[kind].size })) };
    } else {
      const r = await prune(parts, {
        all: req.all,
        ...(req.keepDurationMs ? { keepDurationMs: req.keepDurationMs } : {}),
        ...(req.keepStorageBytes ? { keepStorageBytes: req.keepStorageBytes } : {}),
      });
      reply = { worker: workerId, op: 'prune', freedBytes: r.freedBytes, removed: r.removed.length };
    }
  } catch (err) {
    reply = req.op === 'du'
      ? { worker: workerId, op: 'du', total: 0, kinds: [], error: err instanceof Error ? err.message : String(err) }
      : { worker: workerId, op: 'prune', freedBytes: 0, removed: 0, error: err instanceof Error ? err.message : String(err) };
  }
  await redis.multi().rpush(req.replyKey, JSON.stringify(reply)).expire(req.replyKey, REPLY_TTL_S).exec();
}
