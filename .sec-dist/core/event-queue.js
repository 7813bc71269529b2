/**
 * A push-to-pull bridge: producers `push` values, one consumer iterates them.
 * Unbounded by design for build events, which are small and capped at the
 * source (logs are clipped per step); `end`/`fail` finish the iteration.
 */
export class EventQueue {
    items = [];
    waiter;
    done = false;
    error;
    failed = false;
    push(item) {
        if (this.done)
            return;
        this.items.push(item);
        this.wake();
    }
    end() {
        this.done = true;
        this.wake();
    }
    fail(err) {
        this.error = err;
        this.failed = true;
        this.end();
    }
    wake() {
        const w = this.waiter;
        this.waiter = undefined;
        w?.();
    }
    async *[Symbol.asyncIterator]() {
        for (;;) {
            while (this.items.length > 0)
                yield this.items.shift();
            if (this.done) {
                if (this.failed)
                    throw this.error;
                return;
            }
            await new Promise((resolve) => (this.waiter = resolve));
        }
    }
}
//# sourceMappingURL=event-queue.js.map