/**
 * A small AsyncDisposableStack (Node 20 lacks the global; Node >= 20.4 has
 * Symbol.asyncDispose). Each acquire is followed by `stack.defer(release)`;
 * `move()` hands everything to the caller once setup succeeded.
 */
export class AsyncStack implements AsyncDisposable {
  private callbacks: Array<() => unknown | Promise<unknown>> = [];
  private disposed = false;

  defer(fn: () => unknown | Promise<unknown>): void {
    if (this.disposed) throw new Error('AsyncStack already disposed');
    this.callbacks.push(fn);
  }

  /** Register a disposable value and return it. */
  use<T extends AsyncDisposable | Disposable | null | undefined>(value: T): T {
    if (value) {
      const v = value as Partial<AsyncDisposable & Disposable>;
      const fn = v[Symbol.asyncDispose] ?? v[Symbol.dispose];
      if (fn) this.defer(() => fn.call(value));
    }
    return value;
  }

  /** Transfer the registered releases to a new stack; this one becomes empty. */
  move(): AsyncStack {
    const next = new AsyncStack();
    next.callbacks = this.callbacks;
    this.callbacks = [];
    return next;
  }

  /** Runs releases in reverse order; all run even when one fails; the first failure is rethrown. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    let first: unknown;
    let failed = false;
    for (const fn of this.callbacks.reverse()) {
      try {
        await fn();
      } catch (err) {
        if (!failed) first = err;
        failed = true;
      }
    }
    this.callbacks = [];
    if (failed) throw first;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** A signal that aborts when any of the given signals does, or after `ms` (if given). */
export function anySignal(signals: ReadonlyArray<AbortSignal | undefined>, ms?: number): AbortSignal {
  const list = signals.filter((s): s is AbortSignal => s !== undefined);
  if (ms !== undefined) list.push(AbortSignal.timeout(ms));
  return list.length === 1 ? list[0]! : AbortSignal.any(list);
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}
