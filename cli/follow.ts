import { SERVER_PLACEHOLDER, type BuildEvent, type BuildResult } from '../core/build.js';
import type { BuildliteError, WireError } from '../core/errors.js';
import type { BuildliteClient } from '../api/index.js';

/** How often a dropped Watch stream is resumed before the client gives up. */
const WATCH_RETRIES = 20;

export interface Followed {
  readonly result?: BuildResult;
  readonly error?: WireError;
  /** The last seq seen: resume after it. */
  readonly lastSeq: number;
  /** The signal stopped the watch before the build's last event. */
  readonly interrupted: boolean;
}

export interface FollowOptions {
  /** Events after this seq (0: from the start). */
  readonly fromSeq: number;
  /** The address the client used; log hints from the worker name the server as a placeholder. */
  readonly server: string;
  readonly onEvent: (ev: BuildEvent) => void;
  readonly signal?: AbortSignal;
}

/**
 * Watches one build to its last event, each event once and in order: a
 * stream that drops (a restarting server, the network) is resumed from the
 * last seq seen. An abort ends the watch without an error (the build itself
 * goes on: cancelling it is the caller's decision).
 */
export async function followBuild(client: BuildliteClient, buildId: string, opts: FollowOptions): Promise<Followed> {
  let last = opts.fromSeq;
  let result: BuildResult | undefined;
  let error: WireError | undefined;
  for (let attempt = 0; ; attempt++) {
    try {
      for await (const ev of client.watch(buildId, last, opts.signal)) {
        // The server never repeats a seq; the guard keeps a buggy proxy from making us print twice.
        if (ev.seq <= last) continue;
        last = ev.seq;
        opts.onEvent(withServer(ev, opts.server));
        if (ev.type === 'result') result = ev.result;
        if (ev.type === 'error') error = ev.error;
      }
      return { ...(result ? { result } : {}), ...(error ? { error } : {}), lastSeq: last, interrupted: opts.signal?.aborted === true && !result && !error };
    } catch (err) {
      if (opts.signal?.aborted) return { lastSeq: last, interrupted: true };
      if (attempt >= WATCH_RETRIES || !isTransient(err as BuildliteError)) throw err;
      await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 5000)));
    }
  }
}

/** Log hints from the worker name the server as a placeholder; this client knows the address it used. */
function withServer(ev: BuildEvent, server: string): BuildEvent {
  const hint = `--server ${SERVER_PLACEHOLDER}`;
  if (ev.type === 'log' && ev.data.includes(hint)) return { ...ev, data: ev.data.replace(hint, `--server ${server}`) };
  if (ev.type === 'warning' && ev.message.includes(hint)) return { ...ev, message: ev.message.replace(hint, `--server ${server}`) };
  return ev;
}

/** A dropped connection or a restarting server, not an answer: resume the stream. */
function isTransient(err: BuildliteError): boolean {
  return err.retryable || err.code === 'INTERNAL';
}
