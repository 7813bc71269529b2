import PQueue from 'p-queue';
export class EmbeddedQueue {
    processor;
    queue;
    controllers = new Map();
    constructor(processor, concurrency = 1) {
        this.processor = processor;
        this.queue = new PQueue({ concurrency });
    }
    /** Enqueues a job; resolves with its result once it ran. */
    add(id, data) {
        if (this.controllers.has(id))
            throw new Error(`job ${id} is already queued`);
        const controller = new AbortController();
        this.controllers.set(id, controller);
        return this.queue
            .add(async () => {
            controller.signal.throwIfAborted();
            return this.processor({ id, data }, controller.signal);
        })
            .finally(() => this.controllers.delete(id));
    }
    cancel(id, reason = new Error('cancelled')) {
        const c = this.controllers.get(id);
        c?.abort(reason);
        return c !== undefined;
    }
    get size() {
        return this.queue.size;
    }
    get pending() {
        return this.queue.pending;
    }
    /** Waits until every job queued so far has ended. */
    async drain() {
        await this.queue.onIdle();
    }
}
//# sourceMappingURL=embedded-queue.js.map