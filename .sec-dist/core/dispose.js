/**
 * A small AsyncDisposableStack (Node 20 lacks the global; Node >= 20.4 has
 * Symbol.asyncDispose). Each acquire is followed by `stack.defer(release)`;
 * `move()` hands everything to the caller once setup succeeded.
 */
export class AsyncStack {
    callbacks = [];
    disposed = false;
    defer(fn) {
        if (this.disposed)
            throw new Error('AsyncStack already disposed');
        this.callbacks.push(fn);
    }
    /** Register a disposable value and return it. */
    use(value) {
        if (value) {
            const v = value;
            const fn = v[Symbol.asyncDispose] ?? v[Symbol.dispose];
            if (fn)
                this.defer(() => fn.call(value));
        }
        return value;
    }
    /** Transfer the registered releases to a new stack; this one becomes empty. */
    move() {
        const next = new AsyncStack();
        next.callbacks = this.callbacks;
        this.callbacks = [];
        return next;
    }
    /** Runs releases in reverse order; all run even when one fails; the first failure is rethrown. */
    async dispose() {
        if (this.disposed)
            return;
        this.disposed = true;
        let first;
        let failed = false;
        for (const fn of this.callbacks.reverse()) {
            try {
                await fn();
            }
            catch (err) {
                if (!failed)
                    first = err;
                failed = true;
            }
        }
        this.callbacks = [];
        if (failed)
            throw first;
    }
    async [Symbol.asyncDispose]() {
        await this.dispose();
    }
}
/** A signal that aborts when any of the given signals does, or after `ms` (if given). */
export function anySignal(signals, ms) {
    const list = signals.filter((s) => s !== undefined);
    if (ms !== undefined)
        list.push(AbortSignal.timeout(ms));
    return list.length === 1 ? list[0] : AbortSignal.any(list);
}
export function throwIfAborted(signal) {
    signal?.throwIfAborted();
}
//# sourceMappingURL=dispose.js.map