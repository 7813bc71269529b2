import { readFileSync } from 'node:fs';
import http from 'node:http';
import type https from 'node:https';
import type { Readable } from 'node:stream';
import { isIP } from 'node:net';
import { backoff } from '../core/backoff.js';
import { BuildliteError, CodedError } from '../core/errors.js';
import { builtin } from '../core/lazy-builtins.js';
import { armTimeouts, isTransientNetError, NetTimeoutError, type NetTimeouts } from '../core/net-faults.js';
import { readAllBounded } from '../core/streams.js';
import { Authenticator, type TokenSender } from './auth.js';
import type { CredentialSource } from './credentials.js';
import { RegistryError, isRetryableStatus, parseDiagnostics, redactSecrets, redactUrl } from './errors.js';
import { isLoopbackRegistry, registryHost } from './reference.js';

/** How long a plain ping of an insecure registry may take before a TLS handshake is tried beside it. */
const TLS_PROBE_AFTER_MS = 25;

export type Headers = Record<string, string | string[] | undefined>;
export type BodySource = Buffer | string | (() => Promise<Readable> | Readable);

export interface RegistryRequest {
  /** A reference's registry name (`docker.io`, `127.0.0.1:5000`); credentials are looked up by it. */
  readonly registry: string;
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** `/v2/...` on the registry, or an absolute URL the registry handed out (upload Location). */
  readonly path: string | URL;
  readonly headers?: Record<string, string>;
  /** A factory for streamed bodies, so a retry can reopen the source. */
  readonly body?: BodySource;
  /** Token scopes this request needs. */
  readonly scopes: readonly string[];
  /** Statuses returned to the caller instead of thrown (2xx always are). */
  readonly accept?: readonly number[];
  /** Retry on 408/429/5xx and connection errors (default true). Off for one-shot bodies. */
  readonly retry?: boolean;
  /** For messages, e.g. `push blob sha256:…`. */
  readonly action?: string;
  readonly signal?: AbortSignal | undefined;
}

export interface RegistryResponse {
  readonly status: number;
  readonly headers: Headers;
  /** The final URL after redirects. */
  readonly url: URL;
  readonly body: Readable;
}

export interface TransportOptions {
  readonly credentials: CredentialSource | undefined;
  readonly insecureRegistries: readonly string[];
  readonly caFile: string | undefined;
  readonly userAgent: string;
  readonly retries: number;
  readonly maxRetryDelayMs: number;
  readonly timeouts: NetTimeouts;
}

/** How a request reaches its host: TLS verified against our CAs (plain HTTP goes here too), or TLS unverified. */
type Dispatcher = 'verified' | 'insecure';

interface HostInfo {
  readonly base: URL;
  readonly dispatcher: Dispatcher;
}

/** A bodyless request sent as a host's probe (see Transport.probe). */
interface ProbeRequest {
  readonly method: RegistryRequest['method'];
  readonly path: string;
  readonly headers?: Record<string, string> | undefined;
  readonly action?: string | undefined;
}

interface Probed {
  readonly info: HostInfo;
  /** The probe request's answer, body unread, for the request to use. */
  readonly res?: RegistryResponse;
}

const MAX_ERROR_BODY = 64 * 1024; // ggcr's cap: enough for any real error JSON, bounded for a hostile one
const MAX_REDIRECTS = 5;
const SYSTEM_CA_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

const CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/;

/** Whether an error (network or registry) is worth another attempt. */
export function isRetryable(err: unknown): boolean {
  // A RegistryError by its status; a stall (NetTimeoutError) always; a reset or refused connection.
  return isTransientNetError(err);
}

function errCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string' && c !== 'REGISTRY') return c;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}
export { header as getHeader };

/** Consume and drop a body so the connection returns to the pool. */
export async function discard(body: Readable): Promise<void> {
  body.on('error', () => undefined);
  body.resume();
}

function cancelled(signal: AbortSignal, cause?: unknown): CodedError {
  return new CodedError('CANCELLED', 'registry request cancelled', { cause: cause ?? signal.reason });
}

/**
 * HTTP to registries: scheme choice per host (HTTPS first; plain HTTP only for
 * loopback and insecure registries, remembered per host), auth, redirects that
 * never carry credentials to another origin, retries with backoff, and
 * registry errors turned into RegistryError with redacted URLs.
 */
export class Transport {
  readonly auth: Authenticator;
  private readonly hosts = new Map<string, Promise<HostInfo>>();
  private readonly agents: Agents;

  constructor(private readonly opts: TransportOptions) {
    // Read now: a missing CA file is a configuration error to report at once.
    const caFileText = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
    this.agents = new Agents(caFileText, opts.timeouts);
    this.auth = new Authenticator(opts.credentials, this.tokenSender, new Set(), opts.userAgent);
  }

  async close(): Promise<void> {
    this.agents.close();
  }

  /** Registries that may speak plain HTTP or unverified TLS. */
  isInsecure(registry: string): boolean {
    return isLoopbackRegistry(registry) || this.opts.insecureRegistries.includes(registry);
  }

  /** The base URL of a registry's API (`https://host`), probing once per host. */
  async hostInfo(registry: string, signal?: AbortSignal): Promise<HostInfo> {
    const host = registryHost(registry);
    let p = this.hosts.get(host);
    if (!p) p = this.remember(host, this.probe(registry, host, signal)).then((r) => r.info);
    return p;
  }

  /** Makes `probed` the host's entry (dropped if it fails), so concurrent requests wait for one probe. */
  private remember(host: string, probed: Promise<Probed>): Promise<Probed> {
    const info = probed.then((r) => r.info);
    this.hosts.set(host, info);
    info.catch(() => this.hosts.delete(host));
    return probed;
  }

  // Docker's order for insecure registries: verified HTTPS, then (on a certificate
  // error) unverified HTTPS, then (when the peer does not speak TLS) plain HTTP.
  // For those, a plain-HTTP ping goes out first: a port speaks TLS or it does not,
  // so a registry's answer to it (200 or 401 on /v2/) settles the question at once,
  // and neither node:tls nor OpenSSL is ever set up (~10 ms of a start, ~8 ms of a
  // first handshake). Only when the ping fails, or has no answer after
  // TLS_PROBE_AFTER_MS, a cheap unverified handshake tells whether the peer speaks
  // TLS, so a plain-HTTP loopback registry never costs the CA bundle parse either.
  //
  // `first`, the first request of a process to the host when it has no body, is
  // sent as the ping instead of GET /v2/: any answer of a registry settles the
  // scheme as well, and a re-push or a cached build is one round trip shorter.
  // Its answer is handed back for the request to use, unless it is one to retry;
  // a 401 then goes to the request's own auth step, which records the challenge.
  private async probe(registry: string, host: string, signal?: AbortSignal, first?: ProbeRequest): Promise<Probed> {
    const insecure = this.isInsecure(registry);
    const pingOf = (base: URL) => ({
      method: first?.method ?? 'GET',
      url: new URL(first?.path ?? '/v2/', base),
      headers: first?.headers,
      action: first?.action ?? 'ping registry',
      signal,
    });
    /** What the probe found, with the answer to `first` when the request can use it (its body unread). */
    const settle = async (info: HostInfo, res: RegistryResponse): Promise<Probed> => {
      if (first && !isRetryableStatus(res.status)) return { info, res };
      if (res.status === 401) this.auth.setChallenge(host, header(res.headers, 'www-authenticate'));
      await discard(res.body);
      return { info };
    };
    if (insecure) {
      const plain: HostInfo = { base: new URL(`http://${host}`), dispatcher: 'verified' };
      const ping = this.withRetries(pingOf(plain.base), plain.dispatcher, () => undefined);
      // Settled either way, so an unused or failed ping never surfaces as an unhandled rejection.
      const pinged = ping.then(
        (res) => ({ res }),
        (err: unknown) => ({ err }),
      );
      // A TLS port answers plain HTTP with a 400 (Go, nginx) or a reset; a registry's
      // /v2/ says 200 or 401, and its other endpoints 2xx, 401, 403 or 404.
      const plainAnswer = (r: Awaited<typeof pinged>) =>
        'res' in r && (first ? r.res.status >= 200 && r.res.status < 500 && r.res.status !== 400 : r.res.status === 200 || r.res.status === 401);
      // The handshake starts only when the ping has not settled it: a plain-HTTP registry
      // answers a loopback ping in a few milliseconds, and then node:tls is never loaded.
      const tls = new Promise<boolean>((resolve) => {
        const later = setTimeout(() => resolve(this.agents.speaksTls(host, signal)), TLS_PROBE_AFTER_MS);
        void pinged.then((r) => {
          clearTimeout(later);
          if (!plainAnswer(r)) resolve(this.agents.speaksTls(host, signal));
        });
      });
      const speaksTls = await Promise.race([pinged.then((r) => (plainAnswer(r) ? false : tls)), tls]);
      if (!speaksTls) {
        const r = await pinged;
        if ('res' in r) return settle(plain, r.res);
        if (signal?.aborted) throw cancelled(signal, r.err);
        // Fall through to the full order, which reports the error as it always did.
      } else {
        void pinged.then((r) => ('res' in r ? discard(r.res.body) : undefined));
      }
    }
    const candidates: HostInfo[] = [{ base: new URL(`https://${host}`), dispatcher: 'verified' }];
    let lastErr: unknown;
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      try {
        return await settle(c, await this.withRetries(pingOf(c.base), c.dispatcher, () => undefined));
      } catch (err) {
        if (signal?.aborted) throw cancelled(signal, err);
        lastErr = err;
        if (!insecure || err instanceof RegistryError) break;
        if (c.base.protocol === 'https:') {
          const code = errCode(err) ?? '';
          if (c.dispatcher === 'verified' && CERT_ERRORS.test(code)) candidates.push({ base: c.base, dispatcher: 'insecure' });
          else candidates.push({ base: new URL(`http://${host}`), dispatcher: 'verified' });
        }
      }
    }
    if (lastErr instanceof RegistryError) throw lastErr;
    throw new RegistryError(`cannot reach registry ${host}: ${describeNetError(lastErr)}`, {
      method: 'GET',
      url: `https://${host}/v2/`,
      retryable: isRetryable(lastErr),
      cause: lastErr,
    });
  }

  /** Send one registry request with auth, redirects and retries; non-accepted statuses throw RegistryError. */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    const host = registryHost(req.registry);
    let info: HostInfo;
    // Answered already when this request was the host's probe (sent without credentials).
    let answered: RegistryResponse | undefined;
    if (!this.hosts.has(host) && req.body === undefined && typeof req.path === 'string') {
      const probed = await this.remember(host, this.probe(req.registry, host, req.signal, { method: req.method, path: req.path, headers: req.headers, action: req.action }));
      info = probed.info;
      answered = probed.res;
    } else {
      info = await this.hostInfo(req.registry, req.signal);
    }
    const url = typeof req.path === 'string' ? new URL(req.path, info.base) : req.path;
    let scopes = req.scopes;
    for (let authAttempt = 0; ; authAttempt++) {
      const authorization = answered ? undefined : await this.auth.header(req.registry, host, scopes, req.signal);
      const res =
        answered ??
        (await this.withRetries(
          { method: req.method, url, headers: req.headers, body: req.body, action: req.action, signal: req.signal, retry: req.retry },
          info.dispatcher,
          (u) => (u.origin === info.base.origin ? authorization : undefined),
        ).catch((err: unknown) => {
          throw this.outOfAttempts(err, req, url);
        }));
      answered = undefined;
      if (res.status === 401 && authAttempt === 0) {
        const wider = this.auth.onUnauthorized(host, header(res.headers, 'www-authenticate'), scopes);
        if (wider && (authorization !== undefined || this.auth.hasChallenge(host))) {
          await discard(res.body);
          scopes = wider;
          continue;
        }
      }
      if ((res.status >= 200 && res.status < 300) || req.accept?.includes(res.status)) return res;
      throw await this.errorFrom(res, req.method, req.action, authorization === undefined ? req.registry : undefined);
    }
  }

  /**
   * A network failure (a stall, a reset) once attempts are over, as a
   * RegistryError that says what we were doing, where, and why, the URL
   * redacted. Our own errors (a cancel, a registry's answer) pass as they are.
   */
  private outOfAttempts(err: unknown, req: RegistryRequest, url: URL): unknown {
    if ((err instanceof BuildliteError && !(err instanceof NetTimeoutError)) || req.signal?.aborted) return err;
    const attempts = isRetryable(err) && req.retry !== false ? ` (${this.opts.retries + 1} attempts)` : '';
    return new RegistryError(`${req.action ? `${req.action}: ` : ''}${req.method} ${redactUrl(url)}: ${describeNetError(err)}${attempts}`, {
      method: req.method,
      url: redactUrl(url),
      retryable: isRetryable(err),
      cause: err,
    });
  }

  /** Build a RegistryError from a failed response, reading a bounded, redacted body. */
  async errorFrom(res: RegistryResponse, method: string, action?: string, anonymousRegistry?: string): Promise<RegistryError> {
    let text = '';
    let oversized = false;
    try {
      text = (await readAllBounded(res.body, MAX_ERROR_BODY, 'registry error body')).toString('utf8');
    } catch {
      oversized = true;
      await discard(res.body);
    }
    const diagnostics = method === 'HEAD' ? [] : parseDiagnostics(text, this.auth.secrets);
    // Say so rather than show no reason: the status is then all there is to go on.
    if (oversized) diagnostics.push({ code: 'BODY_TOO_LARGE', message: `the registry's error body was over ${MAX_ERROR_BODY / 1024} KiB and was not read` });
    const challenge = header(res.headers, 'www-authenticate') ?? '';
    // A token without the needed scope is a permission problem, not a login problem.
    const denied = res.status === 401 && anonymousRegistry === undefined && /insufficient_scope/.test(challenge);
    const err = RegistryError.fromResponse({ status: res.status, method, url: redactUrl(res.url), diagnostics, denied, ...(action ? { action } : {}) });
    if (res.status === 401 && anonymousRegistry !== undefined) {
      return new RegistryError(`${err.message}; no credentials for ${anonymousRegistry} (run buildlite login ${anonymousRegistry})`, {
        status: 401,
        method,
        url: err.url,
        diagnostics,
      });
    }
    return err;
  }

  private async withRetries(
    r: { method: string; url: URL; headers?: Record<string, string> | undefined; body?: BodySource | undefined; action?: string | undefined; signal?: AbortSignal | undefined; retry?: boolean | undefined },
    dispatcher: Dispatcher,
    authFor: (u: URL) => string | undefined,
  ): Promise<RegistryResponse> {
    const attempts = r.retry === false ? 1 : this.opts.retries + 1;
    for (let attempt = 0; ; attempt++) {
      if (r.signal?.aborted) throw cancelled(r.signal);
      let res: RegistryResponse;
      try {
        res = await this.follow(r, dispatcher, authFor);
      } catch (err) {
        if (r.signal?.aborted) throw cancelled(r.signal, err);
        if (attempt + 1 >= attempts || !isRetryable(err)) throw err;
        await backoff(attempt, this.opts.maxRetryDelayMs, r.signal);
        continue;
      }
      if (!isRetryableStatus(res.status) || attempt + 1 >= attempts) return res;
      await discard(res.body);
      await backoff(attempt, this.opts.maxRetryDelayMs, r.signal, header(res.headers, 'retry-after'));
    }
  }

  // Redirects are followed by hand: Authorization goes only to the registry's own origin
  // (blob GETs are routinely redirected to storage that must never see it).
  private async follow(
    r: { method: string; url: URL; headers?: Record<string, string> | undefined; body?: BodySource | undefined; signal?: AbortSignal | undefined },
    dispatcher: Dispatcher,
    authFor: (u: URL) => string | undefined,
  ): Promise<RegistryResponse> {
    let url = r.url;
    let method = r.method;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, ...r.headers };
      if (url.origin !== r.url.origin) delete headers.authorization;
      const authorization = authFor(url);
      if (authorization) headers.authorization = authorization;
      const body = method === 'GET' || method === 'HEAD' ? undefined : typeof r.body === 'function' ? await r.body() : r.body;
      const res = await this.agents.send(url, { method, headers, body, dispatcher, signal: r.signal });
      const location = header(res.headers, 'location');
      const redirect = [301, 302, 303, 307, 308].includes(res.statusCode) && location && (method === 'GET' || method === 'HEAD');
      if (!redirect) return { status: res.statusCode, headers: res.headers, url, body: res.body };
      await discard(res.body);
      if (hop >= MAX_REDIRECTS) throw new RegistryError(`too many redirects`, { method, url: redactUrl(r.url) });
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new RegistryError('redirect to a non-HTTP URL', { method, url: redactUrl(url) });
      if (url.protocol === 'https:' && next.protocol === 'http:') throw new RegistryError('redirect from HTTPS to plain HTTP refused', { method, url: redactUrl(url) });
      url = next;
    }
  }

  private readonly tokenSender: TokenSender = async (req) => {
    const res = await this.withRetries(
      { method: req.method, url: req.url, headers: req.headers, body: req.body, action: 'token request', signal: req.signal },
      'verified',
      () => undefined,
    );
    const text = (await readAllBounded(res.body, Authenticator.maxTokenBody, 'token response')).toString('utf8');
    return { status: res.status, headers: res.headers, body: text };
  };

  /** Scrub known secrets from any text bound for a message. */
  redact(text: string): string {
    return redactSecrets(text, this.auth.secrets);
  }
}

/**
 * node:http(s) agents with keep-alive. Verified TLS checks peers against
 * Node's roots, the system bundle and the optional CA file through ONE secure
 * context made on the first TLS connection: handing Node a `ca` list instead
 * parses every PEM again per connection (~60 ms each), and a plain-HTTP
 * registry never pays for it. (node:http rather than undici: undici alone
 * took 90-270 ms to load, on every CLI command.)
 */
class Agents {
  private readonly plain = new http.Agent({ keepAlive: true });
  private verified?: https.Agent;
  private insecure?: https.Agent;

  constructor(
    private readonly caFileText: string | undefined,
    private readonly timeouts: NetTimeouts,
  ) {}

  private agentFor(url: URL, dispatcher: Dispatcher): http.Agent {
    if (url.protocol === 'http:') return this.plain;
    if (dispatcher === 'insecure') return (this.insecure ??= new (builtin('node:https').Agent)({ keepAlive: true, rejectUnauthorized: false }));
    return (this.verified ??= new (builtin('node:https').Agent)({ keepAlive: true, secureContext: builtin('node:tls').createSecureContext({ ca: trustedCas(this.caFileText) }) }));
  }

  /** One HTTP exchange: resolves at the response headers; the body streams after. */
  send(
    url: URL,
    r: { method: string; headers: Record<string, string>; body: Buffer | string | Readable | undefined; dispatcher: Dispatcher; signal: AbortSignal | undefined },
  ): Promise<{ statusCode: number; headers: Headers; body: Readable }> {
    return new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? builtin('node:https') : http;
      const req = mod.request(url, {
        method: r.method,
        headers: r.headers,
        agent: this.agentFor(url, r.dispatcher),
        ...(r.signal ? { signal: r.signal } : {}),
      });
      // A stalled connect, header wait or body becomes a NetTimeoutError: retried like a reset.
      armTimeouts(req, url.host, this.timeouts);
      req.on('error', reject);
      req.on('response', (res) => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res }));
      const body = r.body;
      if (body === undefined) req.end();
      else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
      else {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }

  /**
   * Whether `host` completes a TLS handshake, without verifying it (no CA
   * bundle needed). Only a TLS-level failure on a reachable port says "no":
   * unreachable hosts say "yes" so the caller's full probe reports them.
   */
  speaksTls(host: string, signal?: AbortSignal): Promise<boolean> {
    const { hostname, port } = new URL(`https://${host}`);
    return new Promise((resolve) => {
      // `ca: []`: without a `ca`, Node builds the context on its whole root store,
      // parsing ~140 certificates (~200 M instructions, 20-40 ms) for a handshake
      // that verifies nothing; that parse was the largest cost of a loopback re-push.
      const sock = builtin('node:tls').connect({
        host: hostname.replace(/^\[|\]$/g, ''),
        port: Number(port || 443),
        rejectUnauthorized: false,
        ca: [],
        ...(isIP(hostname) ? {} : { servername: hostname }),
      });
      const done = (v: boolean) => {
        sock.destroy();
        signal?.removeEventListener('abort', onAbort);
        resolve(v);
      };
      const onAbort = () => done(true);
      signal?.addEventListener('abort', onAbort);
      sock.setTimeout(this.timeouts.connectMs, () => done(true));
      sock.once('secureConnect', () => done(true));
      sock.once('error', (err: NodeJS.ErrnoException) => done(!(err.code === 'ECONNRESET' || err.code === 'EPIPE' || /SSL|TLS|wrong version|packet length/i.test(`${err.code} ${err.message}`))));
    });
  }

  close(): void {
    this.plain.destroy();
    this.verified?.destroy();
    this.insecure?.destroy();
  }
}

/** Node's roots plus what the system bundle adds (each PEM once), plus the CA file as given. */
function trustedCas(caFileText: string | undefined): string[] {
  const key = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, '');
  const { rootCertificates } = builtin('node:tls');
  const seen = new Set(rootCertificates.map(key));
  const out = [...rootCertificates];
  const add = (text: string) => {
    for (const pem of text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      if (seen.has(key(pem))) continue;
      seen.add(key(pem));
      out.push(pem);
    }
  };
  for (const f of SYSTEM_CA_BUNDLES) {
    try {
      add(readFileSync(f, 'utf8'));
      break;
    } catch {
      // not this distribution's bundle
    }
  }
  if (caFileText) out.push(caFileText);
  return out;
}

function describeNetError(err: unknown): string {
  // Our own errors (a stall's NetTimeoutError) already say what happened in words.
  if (err instanceof BuildliteError) return err.message.slice(0, 300);
  const code = errCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return code ? `${code} (${msg.slice(0, 200)})` : msg.slice(0, 200);
}
