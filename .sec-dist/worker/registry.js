import os from 'node:os';
/**
 * A worker's presence in Redis: a record in the workers hash (what ListWorkers
 * shows and what the producer reads for cache locality) and an `alive` key with
 * a TTL, refreshed by a heartbeat. A worker that dies stops refreshing it; its
 * record stays until another worker adopts its queue.
 */
export class WorkerPresence {
    redis;
    keys;
    id;
    concurrency;
    ttlMs;
    onBeat;
    timer;
    active = 0;
    startedAt = Date.now();
    constructor(redis, keys, id, concurrency, ttlMs, onBeat = () => undefined) {
        this.redis = redis;
        this.keys = keys;
        this.id = id;
        this.concurrency = concurrency;
        this.ttlMs = ttlMs;
        this.onBeat = onBeat;
    }
    record() {
        return { id: this.id, host: os.hostname(), pid: process.pid, concurrency: this.concurrency, active: this.active, startedAt: this.startedAt, lastSeen: Date.now() };
    }
    async start() {
        await this.beat();
        // A third of the TTL: two missed beats in a row (a slow Redis) do not declare us dead.
        this.timer = setInterval(() => void this.beat().catch(() => undefined), Math.max(200, Math.floor(this.ttlMs / 3)));
        this.timer.unref();
    }
    /** Number of builds running here; published at once so the producer routes by fresh numbers. */
    setActive(n) {
        this.active = n;
        void this.beat().catch(() => undefined);
    }
    async beat() {
        await this.redis
            .multi()
            .hset(this.keys.workers, this.id, JSON.stringify(this.record()))
            .set(this.keys.workerAlive(this.id), '1', 'PX', this.ttlMs)
            .exec();
        this.onBeat();
    }
    async stop() {
        if (this.timer)
            clearInterval(this.timer);
        this.timer = undefined;
        await this.redis.multi().hdel(this.keys.workers, this.id).del(this.keys.workerAlive(this.id)).exec();
    }
}
/** Every registered worker with whether its heartbeat is still alive. */
export async function listWorkers(redis, keys) {
    const all = await redis.hgetall(keys.workers);
    const out = [];
    for (const [id, json] of Object.entries(all)) {
        try {
            const rec = JSON.parse(json);
            out.push({ ...rec, alive: (await redis.exists(keys.workerAlive(id))) === 1 });
        }
        catch {
            // A corrupt record is skipped, not fatal: it is rewritten by its worker's next beat.
        }
    }
    return out.sort((a, b) => a.id.localeCompare(b.id));
}
//# sourceMappingURL=registry.js.map