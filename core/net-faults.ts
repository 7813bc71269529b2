import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { formatSeconds, parseDuration } from './duration.js';
import { BuildliteError, CodedError, type ErrorCode } from './errors.js';

/**
 * How HTTP exchanges (registry requests, `ADD <url>` fetches) fail in ways
 * worth another attempt: stalls past a phase timeout, and the network errors
 * of a peer that restarts or drops connections.
 */

/** Socket and parser codes of a transient failure: the same request may well succeed again. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_CHUNK_SIZE',
]);

/** Whether a network-level error (not an HTTP status) is worth retrying; looks through a few `cause` links. */
export function isTransientNetError(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    if (e instanceof BuildliteError) return e.retryable;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * How long one HTTP exchange (a registry request, an `ADD <url>` fetch) may
 * stall, phase by phase. Each bounds silence, never a whole transfer, so a
 * large blob on a slow link is fine and a peer that stops answering is not:
 *
 *   connect  ── request made → connection up (TCP, and TLS for https)
 *   headers  ── last request byte sent → response headers in
 *   idle     ── longest gap between bytes of the request body going out or
 *               the response body coming in
 */
export interface NetTimeouts {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
}

export const NET_TIMEOUT_DEFAULTS = {
  // A working path completes TCP and TLS handshakes in well under a second; 10 s
  // still covers a lossy link's SYN retransmits (at 1 s and 3 s) before giving up.
  connectMs: 10_000,
  // Registries answer HEAD/GET from metadata in milliseconds and a blob PUT once
  // its digest is checked; file servers answer at once. 30 s leaves room for a
  // slow proxy or storage backend while a stalled server costs one retry's worth
  // of seconds, not the minute (registries) or ten (ADD) it used to.
  headersMs: 30_000,
  // A transfer that moves no byte for a minute is stuck, not slow: a congested
  // link still trickles. Long enough for a registry that pauses between chunks.
  idleMs: 60_000,
} satisfies NetTimeouts;

/** Bounds that make a setting a typo rather than a choice: under 100 ms nothing answers, past an hour nothing is "stalled". */
const MIN_MS = 100;
const MAX_MS = 3_600_000;

const KEYS = { connect: 'connectMs', headers: 'headersMs', idle: 'idleMs' } as const;

/** Defaults filled in and every value checked, at construction (`option` names the option in errors). */
export function netTimeouts(given: Partial<NetTimeouts> | undefined, option: string): NetTimeouts {
  const out = { ...NET_TIMEOUT_DEFAULTS, ...stripUndefined(given ?? {}) };
  for (const [word, key] of Object.entries(KEYS)) {
    const v = out[key];
    if (!Number.isInteger(v) || v < MIN_MS || v > MAX_MS) {
      throw new CodedError('INVALID_OPTION', `${option}: ${word} timeout must be a whole number of ms in [${MIN_MS}, ${MAX_MS}], got ${String(v)}`);
    }
  }
  return out;
}

/** `connect=5s,headers=30s,idle=1m` (any subset, any order) → the values given; throws INVALID_ARGUMENT on anything else. */
export function parseNetTimeouts(spec: string): Partial<NetTimeouts> {
  const out: { -readonly [K in keyof NetTimeouts]?: number } = {};
  for (const part of spec.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    const word = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (!Object.hasOwn(KEYS, word)) {
      throw new CodedError('INVALID_ARGUMENT', `unknown timeout ${JSON.stringify(word.slice(0, 40))} (want connect=, headers= or idle=, e.g. headers=30s)`);
    }
    if (eq < 0) throw new CodedError('INVALID_ARGUMENT', `${word}: want ${word}=DURATION, e.g. ${word}=30s`);
    const key = KEYS[word as keyof typeof KEYS];
    if (out[key] !== undefined) throw new CodedError('INVALID_ARGUMENT', `${word} given twice`);
    out[key] = parseDuration(part.slice(eq + 1));
  }
  return out;
}

export type NetPhase = 'connect' | 'headers' | 'upload' | 'body';

const PHASE_TEXT: Record<NetPhase, string> = {
  connect: 'connecting to',
  headers: 'waiting for response headers from',
  upload: 'with no progress sending the request body to',
  body: 'with no progress receiving the response body from',
};

/** A peer stalled past one of the NetTimeouts; worth another attempt, as any transient network failure. */
export class NetTimeoutError extends BuildliteError {
  readonly code: ErrorCode = 'LIMIT_EXCEEDED';
  override readonly retryable = true;
  constructor(
    readonly phase: NetPhase,
    /** host[:port], for the message; never a URL (paths and queries may hold tokens). */
    readonly host: string,
    readonly timeoutMs: number,
  ) {
    super(`timed out after ${formatSeconds(timeoutMs)} ${PHASE_TEXT[phase]} ${host}`);
  }
  override details(): Record<string, string | number | boolean> {
    return { phase: this.phase, host: this.host, timeoutMs: this.timeoutMs };
  }
}

/**
 * Arm the phase timeouts on one client request, right after `http.request()`.
 * A timeout destroys the request (or, once it arrived, the response) with a
 * NetTimeoutError, so the caller sees it where it already handles network
 * errors. Connect and headers are deadlines; upload and body are idle times
 * (the socket's inactivity timer, which any byte in either direction resets).
 * Everything is disarmed when the exchange ends, so a keep-alive socket goes
 * back to its pool clean.
 */
export function armTimeouts(req: ClientRequest, host: string, t: NetTimeouts): void {
  let timer: NodeJS.Timeout | undefined;
  let sock: Socket | undefined;
  let res: IncomingMessage | undefined;
  let connected = false;
  let sent = false;
  let phase: NetPhase = 'connect';
  let done = false;

  const fail = (p: NetPhase, ms: number) => {
    const err = new NetTimeoutError(p, host, ms);
    if (res) res.destroy(err);
    else req.destroy(err);
  };
  const deadline = (p: NetPhase, ms: number) => {
    clearTimeout(timer);
    phase = p;
    timer = setTimeout(() => fail(p, ms), ms);
  };
  const idle = (p: NetPhase) => {
    clearTimeout(timer);
    phase = p;
    sock?.setTimeout(t.idleMs);
  };
  const onIdle = () => {
    if (phase === 'upload' || phase === 'body') fail(phase, t.idleMs);
  };
  const headersIfReady = () => {
    if (!connected || res) return;
    if (sent) {
      sock?.setTimeout(0);
      deadline('headers', t.headersMs);
    } else idle('upload');
  };
  const cleanup = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (sock) {
      sock.setTimeout(0);
      sock.off('timeout', onIdle);
    }
  };

  // From the request on: name resolution and the handshakes count as connecting.
  deadline('connect', t.connectMs);
  req.once('socket', (s: Socket) => {
    sock = s;
    s.on('timeout', onIdle);
    const up = () => {
      connected = true;
      headersIfReady();
    };
    // A keep-alive socket from the pool is up already (and past its TLS handshake).
    // A TLSSocket says so itself (`encrypted`): no need to load node:tls to ask.
    const tls = (s as Partial<TLSSocket>).encrypted === true;
    const ready = tls ? !s.connecting && (s as TLSSocket).getProtocol() !== 'unknown' && (s as TLSSocket).getProtocol() !== null : !s.connecting;
    if (ready) up();
    else s.once(tls ? 'secureConnect' : 'connect', up);
  });
  req.once('finish', () => {
    sent = true;
    headersIfReady();
  });
  req.once('response', (r: IncomingMessage) => {
    res = r;
    idle('body');
    // 'end' first: the socket may serve the next request right after it, and
    // this exchange must not touch that one's timer when its own 'close' comes.
    r.once('end', cleanup);
    r.once('close', cleanup);
  });
  req.once('close', () => {
    // Before a response, the exchange is over; after one, the response's close ends it.
    if (!res) cleanup();
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
