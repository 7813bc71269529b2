import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSecureContext, rootCertificates } from 'node:tls';
import { Agent, buildConnector, request as undiciRequest } from 'undici';
import { CodedError } from '../core/errors.js';
import { readAllBounded } from '../core/streams.js';
import { Authenticator } from './auth.js';
import { RegistryError, isRetryableStatus, parseDiagnostics, redactSecrets, redactUrl } from './errors.js';
import { isLoopbackRegistry, registryHost } from './reference.js';
const MAX_ERROR_BODY = 64 * 1024; // ggcr's cap: enough for any real error JSON, bounded for a hostile one
const MAX_REDIRECTS = 5;
const BASE_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 10_000;
const HEADERS_TIMEOUT_MS = 60_000; // a registry that accepted the connection but never answers
const BODY_TIMEOUT_MS = 120_000; // idle time between body chunks, not the whole transfer
const SYSTEM_CA_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];
const RETRYABLE_NET = new Set([
    'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH',
    'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
]);
const CERT_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/;
/** Whether an error (network or registry) is worth another attempt. */
export function isRetryable(err) {
    if (err instanceof RegistryError)
        return err.retryable;
    const code = errCode(err);
    return code !== undefined && RETRYABLE_NET.has(code);
}
function errCode(err) {
    let e = err;
    for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
        const c = e.code;
        if (typeof c === 'string' && c !== 'REGISTRY')
            return c;
        e = e.cause;
    }
    return undefined;
}
/** Exponential backoff with full jitter, or the registry's Retry-After when it gave one. */
export function backoffMs(attempt, retryAfter, cap) {
    if (retryAfter) {
        const secs = Number(retryAfter);
        const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(retryAfter) - Date.now();
        if (Number.isFinite(ms) && ms >= 0)
            return Math.min(ms, cap);
    }
    const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** attempt);
    return Math.min(cap, ceiling / 2 + Math.random() * (ceiling / 2));
}
function header(h, name) {
    const v = h[name];
    return Array.isArray(v) ? v[0] : v;
}
export { header as getHeader };
/** Consume and drop a body so the connection returns to the pool. */
export async function discard(body) {
    const b = body;
    if (b.dump)
        await b.dump().catch(() => undefined);
    else
        body.resume();
}
function cancelled(signal, cause) {
    return new CodedError('CANCELLED', 'registry request cancelled', { cause: cause ?? signal.reason });
}
/**
 * HTTP to registries: scheme choice per host (HTTPS first; plain HTTP only for
 * loopback and insecure registries, remembered per host), auth, redirects that
 * never carry credentials to another origin, retries with backoff, and
 * registry errors turned into RegistryError with redacted URLs.
 */
export class Transport {
    opts;
    auth;
    hosts = new Map();
    verified;
    insecureAgent;
    constructor(opts) {
        this.opts = opts;
        // Read now: a missing CA file is a configuration error to report at once.
        const caFileText = opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined;
        this.verified = new Agent({ connect: lazyTlsConnector(caFileText), headersTimeout: HEADERS_TIMEOUT_MS, bodyTimeout: BODY_TIMEOUT_MS });
        this.auth = new Authenticator(opts.credentials, this.tokenSender, new Set(), opts.userAgent);
    }
    async close() {
        await Promise.all([this.verified.close(), this.insecureAgent?.close()]);
    }
    /** Registries that may speak plain HTTP or unverified TLS. */
    isInsecure(registry) {
        return isLoopbackRegistry(registry) || this.opts.insecureRegistries.includes(registry);
    }
    /** The base URL of a registry's API (`https://host`), probing once per host. */
    async hostInfo(registry, signal) {
        const host = registryHost(registry);
        let p = this.hosts.get(host);
        if (!p) {
            p = this.probe(registry, host, signal);
            this.hosts.set(host, p);
            p.catch(() => this.hosts.delete(host));
        }
        return p;
    }
    getInsecureAgent() {
        this.insecureAgent ??= new Agent({
            connect: { rejectUnauthorized: false },
            headersTimeout: HEADERS_TIMEOUT_MS,
            bodyTimeout: BODY_TIMEOUT_MS,
        });
        return this.insecureAgent;
    }
    // Docker's order for insecure registries: verified HTTPS, then (on a certificate
    // error) unverified HTTPS, then (when the peer does not speak TLS) plain HTTP.
    async probe(registry, host, signal) {
        const insecure = this.isInsecure(registry);
        const candidates = [{ base: new URL(`https://${host}`), dispatcher: this.verified }];
        let lastErr;
        for (let i = 0; i < candidates.length; i++) {
            const c = candidates[i];
            try {
                const res = await this.withRetries({ method: 'GET', url: new URL('/v2/', c.base), action: 'ping registry', signal }, c.dispatcher, () => undefined);
                if (res.status === 401)
                    this.auth.setChallenge(host, header(res.headers, 'www-authenticate'));
                await discard(res.body);
                return c;
            }
            catch (err) {
                if (signal?.aborted)
                    throw cancelled(signal, err);
                lastErr = err;
                if (!insecure || err instanceof RegistryError)
                    break;
                if (c.base.protocol === 'https:') {
                    const code = errCode(err) ?? '';
                    if (c.dispatcher === this.verified && CERT_ERRORS.test(code))
                        candidates.push({ base: c.base, dispatcher: this.getInsecureAgent() });
                    else
                        candidates.push({ base: new URL(`http://${host}`), dispatcher: this.verified });
                }
            }
        }
        if (lastErr instanceof RegistryError)
            throw lastErr;
        throw new RegistryError(`cannot reach registry ${host}: ${describeNetError(lastErr)}`, {
            method: 'GET',
            url: `https://${host}/v2/`,
            retryable: isRetryable(lastErr),
            cause: lastErr,
        });
    }
    /** Send one registry request with auth, redirects and retries; non-accepted statuses throw RegistryError. */
    async request(req) {
        const host = registryHost(req.registry);
        const info = await this.hostInfo(req.registry, req.signal);
        const url = typeof req.path === 'string' ? new URL(req.path, info.base) : req.path;
        let scopes = req.scopes;
        for (let authAttempt = 0;; authAttempt++) {
            const authorization = await this.auth.header(req.registry, host, scopes, req.signal);
            const res = await this.withRetries({ method: req.method, url, headers: req.headers, body: req.body, action: req.action, signal: req.signal, retry: req.retry }, info.dispatcher, (u) => (u.origin === info.base.origin ? authorization : undefined));
            if (res.status === 401 && authAttempt === 0) {
                const wider = this.auth.onUnauthorized(host, header(res.headers, 'www-authenticate'), scopes);
                if (wider && (authorization !== undefined || this.auth.hasChallenge(host))) {
                    await discard(res.body);
                    scopes = wider;
                    continue;
                }
            }
            if ((res.status >= 200 && res.status < 300) || req.accept?.includes(res.status))
                return res;
            throw await this.errorFrom(res, req.method, req.action, authorization === undefined ? req.registry : undefined);
        }
    }
    /** Build a RegistryError from a failed response, reading a bounded, redacted body. */
    async errorFrom(res, method, action, anonymousRegistry) {
        let text = '';
        try {
            text = (await readAllBounded(res.body, MAX_ERROR_BODY, 'registry error body')).toString('utf8');
        }
        catch {
            await discard(res.body);
        }
        const diagnostics = method === 'HEAD' ? [] : parseDiagnostics(text, this.auth.secrets);
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
    async withRetries(r, dispatcher, authFor) {
        const attempts = r.retry === false ? 1 : this.opts.retries + 1;
        for (let attempt = 0;; attempt++) {
            if (r.signal?.aborted)
                throw cancelled(r.signal);
            let res;
            try {
                res = await this.follow(r, dispatcher, authFor);
            }
            catch (err) {
                if (r.signal?.aborted)
                    throw cancelled(r.signal, err);
                if (attempt + 1 >= attempts || !isRetryable(err))
                    throw err;
                await sleep(backoffMs(attempt, undefined, this.opts.maxRetryDelayMs), undefined, r.signal ? { signal: r.signal } : undefined).catch(() => undefined);
                continue;
            }
            if (!isRetryableStatus(res.status) || attempt + 1 >= attempts)
                return res;
            await discard(res.body);
            await sleep(backoffMs(attempt, header(res.headers, 'retry-after'), this.opts.maxRetryDelayMs), undefined, r.signal ? { signal: r.signal } : undefined).catch(() => undefined);
        }
    }
    // Redirects are followed by hand: Authorization goes only to the registry's own origin
    // (blob GETs are routinely redirected to storage that must never see it).
    async follow(r, dispatcher, authFor) {
        let url = r.url;
        let method = r.method;
        for (let hop = 0;; hop++) {
            const headers = { 'user-agent': this.opts.userAgent, ...r.headers };
            if (url.origin !== r.url.origin)
                delete headers.authorization;
            const authorization = authFor(url);
            if (authorization)
                headers.authorization = authorization;
            const body = method === 'GET' || method === 'HEAD' ? undefined : typeof r.body === 'function' ? await r.body() : r.body;
            const res = await undiciRequest(url, {
                method: method,
                headers,
                body: body ?? null,
                dispatcher,
                ...(r.signal ? { signal: r.signal } : {}),
            });
            const location = header(res.headers, 'location');
            const redirect = [301, 302, 303, 307, 308].includes(res.statusCode) && location && (method === 'GET' || method === 'HEAD');
            if (!redirect)
                return { status: res.statusCode, headers: res.headers, url, body: res.body };
            await discard(res.body);
            if (hop >= MAX_REDIRECTS)
                throw new RegistryError(`too many redirects`, { method, url: redactUrl(r.url) });
            const next = new URL(location, url);
            if (next.protocol !== 'https:' && next.protocol !== 'http:')
                throw new RegistryError('redirect to a non-HTTP URL', { method, url: redactUrl(url) });
            if (url.protocol === 'https:' && next.protocol === 'http:')
                throw new RegistryError('redirect from HTTPS to plain HTTP refused', { method, url: redactUrl(url) });
            url = next;
        }
    }
    tokenSender = async (req) => {
        const res = await this.withRetries({ method: req.method, url: req.url, headers: req.headers, body: req.body, action: 'token request', signal: req.signal }, this.verified, () => undefined);
        const text = (await readAllBounded(res.body, Authenticator.maxTokenBody, 'token response')).toString('utf8');
        return { status: res.status, headers: res.headers, body: text };
    };
    /** Scrub known secrets from any text bound for a message. */
    redact(text) {
        return redactSecrets(text, this.auth.secrets);
    }
}
/**
 * A connector that verifies TLS peers against Node's roots, the system bundle
 * and the optional CA file, through ONE secure context made on the first TLS
 * connection. Handing undici a `ca` list instead makes Node parse every PEM
 * again for each connection (~60 ms each), and a plain-HTTP registry would
 * pay for it too.
 */
function lazyTlsConnector(caFileText) {
    let plain;
    let tls;
    return (options, callback) => {
        if (options.protocol !== 'https:') {
            plain ??= buildConnector({});
            return plain(options, callback);
        }
        if (!tls) {
            let secureContext;
            try {
                secureContext = createSecureContext({ ca: trustedCas(caFileText) });
            }
            catch (err) {
                callback(err, null);
                return;
            }
            tls = buildConnector({ secureContext });
        }
        return tls(options, callback);
    };
}
/** Node's roots plus what the system bundle adds (each PEM once), plus the CA file as given. */
function trustedCas(caFileText) {
    const key = (pem) => pem.replace(/-----[^-]+-----|\s/g, '');
    const seen = new Set(rootCertificates.map(key));
    const out = [...rootCertificates];
    const add = (text) => {
        for (const pem of text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
            if (seen.has(key(pem)))
                continue;
            seen.add(key(pem));
            out.push(pem);
        }
    };
    for (const f of SYSTEM_CA_BUNDLES) {
        try {
            add(readFileSync(f, 'utf8'));
            break;
        }
        catch {
            // not this distribution's bundle
        }
    }
    if (caFileText)
        out.push(caFileText);
    return out;
}
function describeNetError(err) {
    const code = errCode(err);
    const msg = err instanceof Error ? err.message : String(err);
    return code ? `${code} (${msg.slice(0, 200)})` : msg.slice(0, 200);
}
//# sourceMappingURL=transport.js.map