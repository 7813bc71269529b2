import { setTimeout as sleep } from 'node:timers/promises';

const BASE_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 10_000;

/** Exponential backoff with full jitter (200 ms doubling, at most 10 s), or the server's Retry-After when it gave one; never over `cap`. */
export function backoffMs(attempt: number, retryAfter: string | undefined, cap: number): number {
  if (retryAfter) {
    const secs = Number(retryAfter);
    const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(retryAfter) - Date.now();
    if (Number.isFinite(ms) && ms >= 0) return Math.min(ms, cap);
  }
  const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** attempt);
  return Math.min(cap, ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Wait before attempt `attempt + 1`; a cancel ends the wait early (the caller checks its signal next). */
export async function backoff(attempt: number, cap: number, signal?: AbortSignal, retryAfter?: string): Promise<void> {
  await sleep(backoffMs(attempt, retryAfter, cap), undefined, signal ? { signal } : undefined).catch(() => undefined);
}
