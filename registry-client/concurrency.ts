import { setMaxListeners } from 'node:events';

/**
 * Run `fn` over `items` with at most `limit` in flight. The first failure
 * aborts the shared signal (so siblings stop early), waits for every started
 * task to settle (nothing keeps writing after we return), then rethrows.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const ctl = new AbortController();
  // Each task in flight listens on the shared signal (its request, its body
  // stream, a backoff): a few listeners per task, by design, so Node's leak
  // warning at 10 would fire on stderr for any limit above 4.
  setMaxListeners(Math.max(10, limit * 4), ctl.signal);
  const onAbort = () => ctl.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && !ctl.signal.aborted && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item, ctl.signal);
      } catch (err) {
        failure ??= { err };
        ctl.abort(err);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.err;
  signal?.throwIfAborted();
}
