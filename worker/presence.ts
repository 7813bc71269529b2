import os from 'node:os';
import type { Redis } from 'ioredis';
import type { Keys } from './redis-keys.js';
import type { WorkerRecord } from './records.js';

/**
 * A worker's presence in Redis: a record in the workers hash (what ListWorkers
 * shows and what the producer reads for cache locality) and an `alive` key with
 * a TTL, refreshed by a heartbeat. A worker that dies stops refreshing it; its
 * record stays until another worker adopts its queue.
 */
export class WorkerPresence {
  private timer: NodeJS.Timeout | undefined;
  private active = 0;
  private cacheBytes: number | undefined;
  readonly startedAt = Date.now();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    readonly id: string,
    private readonly concurrency: number,
    private readonly ttlMs: number,
    /** The platforms this worker offers: its own first, then those it runs under emulation. */
    private readonly platforms: readonly string[],
    private readonly onBeat: () => void = () => undefined,
    /** Ids of the builds running here, so whoever notices this worker lost can say which builds it had. */
    private readonly builds: () => readonly string[] = () => [],
  ) {}

  record(): WorkerRecord {
    return {
      id: this.id,
      host: os.hostname(),
      pid: process.pid,
      concurrency: this.concurrency,
      active: this.active,
      startedAt: this.startedAt,
      lastSeen: Date.now(),
      platform: this.platforms[0] ?? '',
      platforms: [...this.platforms],
      builds: [...this.builds()],
      ...(this.cacheBytes !== undefined ? { cacheBytes: this.cacheBytes } : {}),
    };
  }

  async start(): Promise<void> {
    await this.beat();
    // A third of the TTL: two missed beats in a row (a slow Redis) do not declare us dead.
    this.timer = setInterval(() => void this.beat().catch(() => undefined), Math.max(200, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  /** Number of builds running here; published at once so the producer routes by fresh numbers. */
  setActive(n: number): void {
    this.active = n;
    void this.beat().catch(() => undefined);
  }

  /** The cache size last measured; published with the next beat (it changes slowly). */
  setCacheBytes(n: number): void {
    this.cacheBytes = n;
  }

  async beat(): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.workers, this.id, JSON.stringify(this.record()))
      .set(this.keys.workerAlive(this.id), '1', 'PX', this.ttlMs)
      // Alive (again, after a stall or a restart under the same id): a later loss is news again.
      .del(this.keys.workerLost(this.id))
      .exec();
    this.onBeat();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.multi().hdel(this.keys.workers, this.id).del(this.keys.workerAlive(this.id)).exec();
  }
}

/** Every registered worker with whether its heartbeat is still alive. */
export async function listWorkers(redis: Redis, keys: Keys): Promise<Array<WorkerRecord & { alive: boolean }>> {
  const all = await redis.hgetall(keys.workers);
  const out: Array<WorkerRecord & { alive: boolean }> = [];
  for (const [id, json] of Object.entries(all)) {
    try {
      const rec = JSON.parse(json) as WorkerRecord;
      out.push({ ...rec, alive: (await redis.exists(keys.workerAlive(id))) === 1 });
    } catch {
      // A corrupt record is skipped, not fatal: it is rewritten by its worker's next beat.
    }
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
