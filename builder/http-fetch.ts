import type { WriteStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { backoff } from '../core/backoff.js';
import type { Digest } from '../core/digest.js';
import { BuildliteError, CodedError, type ErrorCode } from '../core/errors.js';
import { builtin } from '../core/lazy-builtins.js';
import { armTimeouts, isTransientNetError, netTimeouts, NetTimeoutError, type NetTimeouts } from '../core/net-faults.js';
import { redactUrlCredentials } from '../core/redact.js';
import { DigestMismatchError, HashingTap, LimitExceededError, limitBytes, meterBytes } from '../core/streams.js';
import { AddressPolicy } from './address-policy.js';
import { contentDispositionFilename } from './content-disposition.js';
import type { FetchedFile, HttpFetcher } from './solver/index.js';

/**
 * The network policy for `ADD <url>` (docs/security.md T7), in every mode: loopback,
 * link-local, private and other non-public addresses are refused unless the
 * developer (`build --allow-private-urls`) or the operator (`worker
 * --allow-private-urls`, `--allow-url-network CIDR`) allows them. The check
 * runs on the resolved address of every hop, and the connection goes to
 * exactly that address, so a DNS answer that changes between check and
 * connect cannot switch it.
 */
export interface HttpPolicy {
  /** Allow every address, loopback and cloud metadata included: the explicit opt-in. */
  readonly allowPrivate?: boolean;
  /** CIDRs (`10.1.0.0/16`, `fd00::/8`) or single addresses allowed although they are in a denied range. */
  readonly allowNetworks?: readonly string[];
  /** How the caller's user allows a refused address, for the error (`pass --allow-private-urls`). */
  readonly deniedHint?: string;
  /** Largest body accepted. */
  readonly maxBytes?: number;
  /** Deadline for the whole fetch, redirects and retries included. */
  readonly timeoutMs?: number;
  readonly maxRedirects?: number;
  /** Extra attempts after a transient failure (a stall, a reset, 408/429/5xx). */
  readonly retries?: number;
  /** Stall limits per phase (connect, response headers, idle body); core/net-faults.ts has the defaults. */
  readonly timeouts?: Partial<NetTimeouts>;
}

export const HTTP_DEFAULTS = {
  allowPrivate: false,
  allowNetworks: [] as readonly string[],
  deniedHint: 'allow it with the builder option httpPolicy.allowPrivate or httpPolicy.allowNetworks',
  // The limit; large enough for toolchain tarballs, small enough that one ADD cannot fill a disk.
  maxBytes: 1 << 30,
  // A cap on the whole transfer, not a stall detector (the phase timeouts are): 1 GiB at ~2 MB/s still fits.
  timeoutMs: 10 * 60_000,
  // Go's http.Client default, which BuildKit's http source inherits.
  maxRedirects: 10,
  // Four attempts ride out a server restart or a stall or two (each costs at most one phase timeout).
  retries: 3,
  timeouts: {} as Partial<NetTimeouts>,
} satisfies Required<HttpPolicy>;

/** The longest wait between attempts (Retry-After included): a fetch must not park a build slot. */
const MAX_RETRY_DELAY_MS = 10_000;

export class HttpPolicyError extends BuildliteError {
  readonly code: ErrorCode = 'PERMISSION_DENIED';
}

export class HttpFetchError extends BuildliteError {
  readonly code: ErrorCode;
  override readonly retryable: boolean;
  /** The server's Retry-After, when it answered 429 or 503 with one. */
  readonly retryAfter: string | undefined;
  constructor(message: string, readonly status?: number, options?: { cause?: unknown; code?: ErrorCode; retryable?: boolean; retryAfter?: string | undefined }) {
    super(message, options);
    this.retryAfter = options?.retryAfter;
    this.code = options?.code ?? (status === 404 || status === 410 ? 'NOT_FOUND' : 'INVALID_ARGUMENT');
    this.retryable = options?.retryable ?? (status === undefined || status >= 500 || status === 429 || status === 408);
  }
  override details(): Record<string, string | number | boolean> {
    return this.status !== undefined ? { status: this.status } : {};
  }
}

/** Check a policy the way a builder will, for callers that validate options before starting one (throws INVALID_OPTION). */
export function checkHttpPolicy(policy: HttpPolicy): void {
  new PolicedHttpFetcher(policy);
}

/** Name resolution, replaceable so tests can make any name resolve anywhere. */
export type Resolve = (host: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export const systemResolve: Resolve = (host) => builtin('node:dns/promises').lookup(host, { all: true, verbatim: true });

/**
 * Fetches one URL into a file, streaming and hashing, under the policy.
 * Only http and https; no credentials are ever sent (URLs carrying them are
 * refused, and no Authorization or Cookie header exists); proxies from the
 * environment are not used (a proxy would connect to addresses we never
 * checked); bodies are stored as sent, never unpacked. The caller picks the
 * file's path; the server's Content-Disposition name is only reported, as a
 * safe base name, for the caller to use or not.
 */
export class PolicedHttpFetcher implements HttpFetcher {
  private readonly policy: Required<Omit<HttpPolicy, 'timeouts'>>;
  private readonly timeouts: NetTimeouts;
  private readonly addresses: AddressPolicy;

  constructor(
    policy: HttpPolicy = {},
    private readonly resolveName: Resolve = systemResolve,
  ) {
    this.policy = { ...HTTP_DEFAULTS, ...stripUndefined(policy) };
    const { maxBytes, timeoutMs, maxRedirects, retries } = this.policy;
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new CodedError('INVALID_OPTION', `httpPolicy.maxBytes: want a positive integer, got ${maxBytes}`);
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new CodedError('INVALID_OPTION', `httpPolicy.timeoutMs: want a positive integer, got ${timeoutMs}`);
    if (!Number.isSafeInteger(maxRedirects) || maxRedirects < 0) throw new CodedError('INVALID_OPTION', `httpPolicy.maxRedirects: want an integer >= 0, got ${maxRedirects}`);
    if (!Number.isSafeInteger(retries) || retries < 0 || retries > 20) throw new CodedError('INVALID_OPTION', `httpPolicy.retries: want an integer in [0, 20], got ${retries}`);
    this.timeouts = netTimeouts(policy.timeouts, 'httpPolicy.timeouts');
    this.addresses = new AddressPolicy({ allowPrivate: this.policy.allowPrivate, allowNetworks: this.policy.allowNetworks });
  }

  async fetchToFile(url: string, dest: string, opts: { signal?: AbortSignal; checksum?: Digest; meter?: (total: number, chunk: number) => void } = {}): Promise<FetchedFile> {
    const deadline = AbortSignal.timeout(this.policy.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(url, dest, signal, opts.checksum, opts.meter);
      } catch (err) {
        if (deadline.aborted && !opts.signal?.aborted) {
          throw new LimitExceededError(`ADD ${redact(url)}: not finished within ${this.policy.timeoutMs} ms`, { cause: err });
        }
        if (opts.signal?.aborted) throw err;
        const transient = isTransientNetError(err);
        if (!transient || attempt >= this.policy.retries) throw described(err, url, transient ? attempt + 1 : 0);
        await backoff(attempt, MAX_RETRY_DELAY_MS, signal, err instanceof HttpFetchError ? err.retryAfter : undefined);
      }
    }
  }

  /** One GET (with its redirects) into a fresh `dest`; on any failure `dest` is gone again. */
  private async attempt(url: string, dest: string, signal: AbortSignal, checksum: Digest | undefined, meter?: (total: number, chunk: number) => void): Promise<FetchedFile> {
    let res: IncomingMessage | undefined;
    // 'wx' creates the file or fails: never writes through a planted symlink.
    const file = await open(dest, 'wx', 0o600);
    let out: WriteStream | undefined;
    let done = false;
    try {
      res = await this.follow(url, signal);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > this.policy.maxBytes) {
        throw new LimitExceededError(`ADD ${redact(url)}: the body is ${declared} bytes, over the limit of ${this.policy.maxBytes}`);
      }
      const tap = new HashingTap();
      // The stream owns the handle from here: it closes it at the end or when pipeline destroys it.
      out = file.createWriteStream();
      const bound = limitBytes(this.policy.maxBytes, `ADD ${redact(url)}: the body`);
      await (meter ? pipeline(res, bound, meterBytes(meter), tap, out, { signal }) : pipeline(res, bound, tap, out, { signal }));
      const digest = tap.digest();
      if (checksum !== undefined && digest !== checksum) {
        throw new DigestMismatchError({ digest: checksum }, { digest, size: tap.size }, `ADD ${redact(url)}`);
      }
      done = true;
      const filename = contentDispositionFilename(res.headers['content-disposition']);
      return { digest, ...(filename !== undefined ? { filename } : {}) };
    } finally {
      res?.destroy();
      if (out) {
        if (!out.closed) await new Promise<void>((resolve) => out!.once('close', () => resolve()).destroy());
      } else await file.close();
      if (!done) await unlink(dest).catch(() => undefined);
    }
  }

  /** GET with manual redirects; each hop is parsed, normalised, resolved and checked before we connect. */
  private async follow(start: string, signal: AbortSignal): Promise<IncomingMessage> {
    let current = start;
    for (let hop = 0; ; hop++) {
      const url = this.parse(current, start);
      const target = await this.resolve(url, start);
      signal.throwIfAborted();
      const res = await this.get(url, target, start, signal);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && status !== 304 && res.headers.location !== undefined) {
        res.destroy();
        if (hop >= this.policy.maxRedirects) throw new HttpFetchError(`ADD ${redact(start)}: more than ${this.policy.maxRedirects} redirects`, status, { retryable: false });
        current = new URL(res.headers.location, url).href;
        continue;
      }
      if (status < 200 || status >= 300) {
        res.destroy();
        throw new HttpFetchError(`ADD ${redact(start)}: ${redact(url.href)} answered ${status} ${res.statusMessage ?? ''}`.trim(), status, {
          retryAfter: header(res, 'retry-after'),
        });
      }
      return res;
    }
  }

  private parse(raw: string, start: string): URL {
    let url: URL;
    try {
      url = new URL(raw);
    } catch (cause) {
      throw new HttpFetchError(`ADD ${redact(start)}: invalid URL`, undefined, { cause, retryable: false });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new HttpPolicyError(`ADD ${redact(start)}: ${url.protocol} URLs are not fetched (only http and https)`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new HttpPolicyError(`ADD ${redact(start)}: URLs with credentials are refused; credentials are never sent (fetch private files in a RUN step with a --mount=type=secret)`);
    }
    return url;
  }

  /** The one address we will connect to; every answer must pass, so a mixed answer cannot be steered. */
  private resolve(url: URL, start: string): Promise<{ address: string; family: 4 | 6 }> {
    // WHATWG URL has already normalised the host (0x7f.1, 2130706433, 0177.0.0.1 → 127.0.0.1; IPv6 in brackets).
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    return resolveAllowed(host, { addresses: this.addresses, resolveName: this.resolveName, what: `ADD ${redact(start)}`, hint: this.policy.deniedHint });
  }

  private check(address: string, host: string, start: string): void {
    checkAllowed(address, host, { addresses: this.addresses, what: `ADD ${redact(start)}`, hint: this.policy.deniedHint });
  }

  /** One GET to a checked address; the Host header and TLS name stay the URL's host. */
  private get(url: URL, target: { address: string; family: 4 | 6 }, start: string, signal: AbortSignal): Promise<IncomingMessage> {
    const pinned: LookupFunction = (_host, opts, cb) => {
      if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [target]);
      else cb(null, target.address, target.family);
    };
    const mod = url.protocol === 'https:' ? builtin('node:https') : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, {
        method: 'GET',
        lookup: pinned,
        agent: false,
        signal,
        headers: { 'user-agent': 'buildlite', accept: '*/*', 'accept-encoding': 'identity' },
      });
      armTimeouts(req, url.host, this.timeouts);
      // The socket went where the check said, and nowhere else: checked again on the connected peer.
      req.once('socket', (sock: Socket) =>
        sock.once('connect', () => {
          try {
            this.check(sock.remoteAddress ?? '', url.hostname, start);
          } catch (err) {
            req.destroy(err as Error);
          }
        }),
      );
      req.once('response', resolve);
      req.once('error', (err) => {
        if (signal.aborted) reject(signal.reason as Error);
        else if (err instanceof BuildliteError) reject(err);
        else reject(new HttpFetchError(`GET ${redact(url.href)}: ${err.message}`, undefined, { cause: err, retryable: isTransientNetError(err) }));
      });
      req.end();
    });
  }
}

/** How a host is checked for a fetch: the policy, name resolution, and words for the refusal. */
export interface HostCheck {
  readonly addresses: AddressPolicy;
  readonly resolveName: Resolve;
  /** What is fetching, for messages (`ADD https://…`, `git source https://…`). */
  readonly what: string;
  /** How the caller's user allows a refused address. */
  readonly hint: string;
}

/**
 * Resolves a host under the address policy (docs/security.md T7): every
 * answer must pass, so a mixed answer cannot be steered; the first is the one
 * to connect to, and the caller connects to exactly that address. Shared by
 * `ADD <url>` and git sources.
 */
export async function resolveAllowed(host: string, check: HostCheck): Promise<{ address: string; family: 4 | 6 }> {
  let answers: ReadonlyArray<{ address: string; family: number }>;
  if (isIP(host) !== 0) answers = [{ address: host, family: isIP(host) }];
  else {
    try {
      answers = await check.resolveName(host);
    } catch (cause) {
      throw new HttpFetchError(`${check.what}: cannot resolve ${host}`, undefined, { cause, retryable: isTransientNetError(cause) });
    }
  }
  if (answers.length === 0) throw new HttpFetchError(`${check.what}: ${host} has no address`, undefined, { retryable: false });
  for (const a of answers) checkAllowed(a.address, host, check);
  const first = answers[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

function checkAllowed(address: string, host: string, check: Pick<HostCheck, 'addresses' | 'what' | 'hint'>): void {
  const kind = check.addresses.denial(address);
  if (kind === undefined) return;
  const what = host === address ? address : `${host} (${address})`;
  throw new HttpPolicyError(`${check.what}: ${what} is a ${kind} address, which URL fetches may not reach; ${check.hint}`);
}

/** The error a caller sees once attempts are over: what, where and why, the URL redacted. */
function described(err: unknown, url: string, attempts: number): unknown {
  const tries = attempts > 1 ? ` (${attempts} attempts)` : '';
  if (err instanceof NetTimeoutError) {
    return new HttpFetchError(`ADD ${redact(url)}: ${err.message}${tries}`, undefined, { cause: err, code: 'LIMIT_EXCEEDED', retryable: true });
  }
  if (err instanceof HttpFetchError && tries) {
    return new HttpFetchError(`${err.message}${tries}`, err.status, { cause: err, code: err.code, retryable: err.retryable });
  }
  if (!(err instanceof BuildliteError) && isTransientNetError(err)) {
    const why = err instanceof Error ? err.message : String(err);
    return new HttpFetchError(`ADD ${redact(url)}: ${why}${tries}`, undefined, { cause: err, retryable: true });
  }
  return err;
}

function header(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Query strings often carry signed tokens, user info passwords: errors show the URL without either. */
function redact(raw: string): string {
  try {
    const u = new URL(raw);
    u.username = '';
    u.password = '';
    if (u.search) u.search = '?…';
    return u.href;
  } catch {
    return redactUrlCredentials(raw).slice(0, 200);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
