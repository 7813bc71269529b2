/**
 * Run `fn` over `items` with at most `limit` in flight. The first failure
 * aborts the shared signal (so siblings stop early), waits for every started
 * task to settle (nothing keeps writing after we return), then rethrows.
 */
export async function forEachLimit(items, limit, signal, fn) {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let next = 0;
    let failure;
    const worker = async () => {
        while (!failure && !ctl.signal.aborted && next < items.length) {
            const item = items[next++];
            try {
                await fn(item, ctl.signal);
            }
            catch (err) {
                failure ??= { err };
                ctl.abort(err);
            }
        }
    };
    try {
        await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
    }
    finally {
        signal?.removeEventListener('abort', onAbort);
    }
    if (failure)
        throw failure.err;
    signal?.throwIfAborted();
}
//# sourceMappingURL=concurrency.js.map