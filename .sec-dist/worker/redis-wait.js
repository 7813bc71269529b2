import { Redis } from 'ioredis';
export const REDIS_WAIT_DEFAULTS = {
    firstDelayMs: 500,
    // Long enough not to hammer a Redis that is starting, short enough that a worker resumes soon after.
    maxDelayMs: 10_000,
};
/**
 * Waits until Redis answers PING, retrying with exponential backoff and
 * saying clearly, once per attempt, what is wrong. Resolves false if
 * `signal` aborts first. Also checks `maxmemory-policy`: BullMQ loses jobs
 * under eviction, so anything but `noeviction` is reported loudly.
 */
export async function waitForRedis(url, log, signal) {
    let delay = REDIS_WAIT_DEFAULTS.firstDelayMs;
    for (let attempt = 1; !signal?.aborted; attempt++) {
        const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5000, enableOfflineQueue: false });
        r.on('error', () => undefined);
        try {
            await r.connect();
            if ((await r.ping()) === 'PONG') {
                const policy = await r.config('GET', 'maxmemory-policy').catch(() => undefined);
                const value = Array.isArray(policy) ? String(policy[1]) : undefined;
                if (value && value !== 'noeviction')
                    log.error({ policy: value }, 'Redis maxmemory-policy is not noeviction: BullMQ jobs can be evicted and lost; set maxmemory-policy noeviction');
                return true;
            }
        }
        catch (err) {
            log.error({ redis: redactUrl(url), attempt, retryInMs: delay, err: err instanceof Error ? err.message : String(err) }, `cannot reach Redis at ${redactUrl(url)}; retrying`);
        }
        finally {
            r.disconnect();
        }
        await new Promise((resolve) => {
            const t = setTimeout(resolve, delay);
            signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
        });
        delay = Math.min(delay * 2, REDIS_WAIT_DEFAULTS.maxDelayMs);
    }
    return false;
}
/** A Redis URL without its password, for messages and logs. */
export function redactUrl(url) {
    try {
        const u = new URL(url);
        if (u.password)
            u.password = '***';
        return u.toString();
    }
    catch {
        return '<unparseable redis url>';
    }
}
//# sourceMappingURL=redis-wait.js.map