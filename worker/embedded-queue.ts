import PQueue from 'p-queue';

/**
 * The in-process queue of embedded mode: the same "enqueue a job, a processor
 * runs it with a signal" shape as the BullMQ queue, without Redis. Jobs run
 * in arrival order, `concurrency` at a time; `cancel` aborts a queued or
 * running job's signal.
 */
export interface EmbeddedJob<T> {
  readonly id: string;
  readonly data: T;
}

export class EmbeddedQueue<T, R> {
  private readonly queue: PQueue;
  private readonly controllers = new Map<string, AbortController>();

  constructor(
    private readonly processor: (job: EmbeddedJob<T>, signal: AbortSignal) => Promise<R>,
    concurrency = 1,
  ) {
    this.queue = new PQueue({ concurrency });
  }

  /** Enqueues a job; resolves with its result once it ran. */
  add(id: string, data: T): Promise<R> {
    if (this.controllers.has(id)) throw new Error(`job ${id} is already queued`);
    const controller = new AbortController();
    this.controllers.set(id, controller);
    return this.queue
      .add(async () => {
        controller.signal.throwIfAborted();
        return this.processor({ id, data }, controller.signal);
      })
      .finally(() => this.controllers.delete(id)) as Promise<R>;
  }

  cancel(id: string, reason: unknown = new Error('cancelled')): boolean {
    const c = this.controllers.get(id);
    c?.abort(reason);
    return c !== undefined;
  }

  get size(): number {
    return this.queue.size;
  }

  get pending(): number {
    return this.queue.pending;
  }

  /** Waits until every job queued so far has ended. */
  async drain(): Promise<void> {
    await this.queue.onIdle();
  }
}
