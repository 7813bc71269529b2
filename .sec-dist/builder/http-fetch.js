import { lookup as dnsLookup } from 'node:dns/promises';
import { open, unlink } from 'node:fs/promises';
import http, {} from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { BuildliteError, CodedError } from '../core/errors.js';
import { DigestMismatchError, HashingTap, LimitExceededError, limitBytes } from '../core/streams.js';
export const HTTP_DEFAULTS = {
    allowLoopback: false,
    allowNetworks: [],
    // The limit; large enough for toolchain tarballs, small enough that one ADD cannot fill a disk.
    maxBytes: 1 << 30,
    // A fetch that has not finished in 10 minutes is stuck or hostile, and holds a build slot.
    timeoutMs: 10 * 60_000,
    // Go's http.Client default, which BuildKit's http source inherits.
    maxRedirects: 10,
};
/** Ranges never reached by default: loopback, link-local (cloud metadata), private, and other non-public space. */
const DENIED_V4 = [
    ['0.0.0.0', 8], // "this network": connecting to 0.0.0.0 reaches the local host
    ['10.0.0.0', 8],
    ['100.64.0.0', 10], // carrier-grade NAT, often internal
    ['127.0.0.0', 8],
    ['169.254.0.0', 16], // link-local, 169.254.169.254 is the cloud metadata service
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['224.0.0.0', 4], // multicast
    ['240.0.0.0', 4], // reserved and broadcast
];
const DENIED_V6 = [
    ['::', 128],
    ['::1', 128],
    ['64:ff9b::', 96], // NAT64: embeds an IPv4 address we cannot vet here
    ['2002::', 16], // 6to4: likewise
    ['fc00::', 7], // unique local (fd00:ec2::254 is a metadata address)
    ['fe80::', 10], // link-local
    ['ff00::', 8], // multicast
];
export class HttpPolicyError extends BuildliteError {
    code = 'PERMISSION_DENIED';
}
export class HttpFetchError extends BuildliteError {
    status;
    code;
    retryable;
    constructor(message, status, options) {
        super(message, options);
        this.status = status;
        this.code = status === 404 || status === 410 ? 'NOT_FOUND' : 'INVALID_ARGUMENT';
        this.retryable = status === undefined || status >= 500 || status === 429 || status === 408;
    }
    details() {
        return this.status !== undefined ? { status: this.status } : {};
    }
}
/**
 * Fetches one URL into a file, streaming and hashing, under the policy.
 * Only http and https; no credentials are ever sent (URLs carrying them are
 * refused, and no Authorization or Cookie header exists); proxies from the
 * environment are not used (a proxy would connect to addresses we never
 * checked); bodies are stored as sent, never unpacked. The caller picks the
 * file name; the server never does (Content-Disposition is ignored).
 */
export class PolicedHttpFetcher {
    policy;
    denied = new BlockList();
    allowed = new BlockList();
    constructor(policy = {}) {
        this.policy = { ...HTTP_DEFAULTS, ...stripUndefined(policy) };
        const { maxBytes, timeoutMs, maxRedirects } = this.policy;
        if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0)
            throw new CodedError('INVALID_OPTION', `httpPolicy.maxBytes: want a positive integer, got ${maxBytes}`);
        if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0)
            throw new CodedError('INVALID_OPTION', `httpPolicy.timeoutMs: want a positive integer, got ${timeoutMs}`);
        if (!Number.isSafeInteger(maxRedirects) || maxRedirects < 0)
            throw new CodedError('INVALID_OPTION', `httpPolicy.maxRedirects: want an integer >= 0, got ${maxRedirects}`);
        for (const [a, p] of DENIED_V4)
            this.denied.addSubnet(a, p, 'ipv4');
        for (const [a, p] of DENIED_V6)
            this.denied.addSubnet(a, p, 'ipv6');
        if (this.policy.allowLoopback) {
            this.allowed.addSubnet('127.0.0.0', 8, 'ipv4');
            this.allowed.addAddress('::1', 'ipv6');
        }
        for (const net of this.policy.allowNetworks)
            addNetwork(this.allowed, net);
    }
    async fetchToFile(url, dest, opts = {}) {
        const deadline = AbortSignal.timeout(this.policy.timeoutMs);
        const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
        let res;
        // 'wx' creates the file or fails: never writes through a planted symlink.
        const file = await open(dest, 'wx', 0o600);
        let out;
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
            await pipeline(res, limitBytes(this.policy.maxBytes, `ADD ${redact(url)}: the body`), tap, out, { signal });
            const digest = tap.digest();
            if (opts.checksum !== undefined && digest !== opts.checksum) {
                throw new DigestMismatchError({ digest: opts.checksum }, { digest, size: tap.size }, `ADD ${redact(url)}`);
            }
            done = true;
            return digest;
        }
        catch (err) {
            if (deadline.aborted && !opts.signal?.aborted) {
                throw new LimitExceededError(`ADD ${redact(url)}: not finished within ${this.policy.timeoutMs} ms`, { cause: err });
            }
            throw err;
        }
        finally {
            res?.destroy();
            if (out) {
                if (!out.closed)
                    await new Promise((resolve) => out.once('close', () => resolve()).destroy());
            }
            else
                await file.close();
            if (!done)
                await unlink(dest).catch(() => undefined);
        }
    }
    /** GET with manual redirects; each hop is parsed, normalised, resolved and checked before we connect. */
    async follow(start, signal) {
        let current = start;
        for (let hop = 0;; hop++) {
            const url = this.parse(current, start);
            const address = await this.resolve(url, start);
            signal.throwIfAborted();
            const res = await get(url, address, signal);
            const status = res.statusCode ?? 0;
            if (status >= 300 && status < 400 && status !== 304 && res.headers.location !== undefined) {
                res.destroy();
                if (hop >= this.policy.maxRedirects)
                    throw new HttpFetchError(`ADD ${redact(start)}: more than ${this.policy.maxRedirects} redirects`);
                current = new URL(res.headers.location, url).href;
                continue;
            }
            if (status < 200 || status >= 300) {
                res.destroy();
                throw new HttpFetchError(`ADD ${redact(start)}: ${redact(url.href)} answered ${status} ${res.statusMessage ?? ''}`.trim(), status);
            }
            return res;
        }
    }
    parse(raw, start) {
        let url;
        try {
            url = new URL(raw);
        }
        catch (cause) {
            throw new HttpFetchError(`ADD ${redact(start)}: invalid URL`, undefined, { cause });
        }
        if (url.protocol !== 'http:' && url.protocol !== 'https:') {
            throw new HttpPolicyError(`ADD ${redact(start)}: ${url.protocol} URLs are not fetched (only http and https)`);
        }
        if (url.username !== '' || url.password !== '') {
            throw new HttpPolicyError(`ADD ${redact(start)}: URLs with credentials are refused; credentials are never sent`);
        }
        return url;
    }
    /** The one address we will connect to; every answer must pass, so a mixed answer cannot be steered. */
    async resolve(url, start) {
        // WHATWG URL has already normalised the host (0x7f.1, 2130706433 → 127.0.0.1; IPv6 in brackets).
        const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
        let answers;
        if (isIP(host) !== 0)
            answers = [{ address: host, family: isIP(host) }];
        else {
            try {
                answers = await dnsLookup(host, { all: true, verbatim: true });
            }
            catch (cause) {
                throw new HttpFetchError(`ADD ${redact(start)}: cannot resolve ${host}`, undefined, { cause });
            }
        }
        if (answers.length === 0)
            throw new HttpFetchError(`ADD ${redact(start)}: ${host} has no address`);
        for (const a of answers) {
            if (!this.permits(a.address, a.family)) {
                throw new HttpPolicyError(`ADD ${redact(start)}: ${host} is ${a.address}, a loopback, link-local or private address; the operator has not allowed it`);
            }
        }
        const first = answers[0];
        return { address: first.address, family: first.family === 6 ? 6 : 4 };
    }
    permits(address, family) {
        const type = family === 6 ? 'ipv6' : 'ipv4';
        // BlockList matches IPv4-mapped IPv6 (::ffff:a.b.c.d) against IPv4 rules, so mapped forms cannot slip through.
        if (this.allowed.check(address, type))
            return true;
        return !this.denied.check(address, type);
    }
}
/** One GET to a checked address; the Host header and TLS name stay the URL's host. */
function get(url, target, signal) {
    const pinned = (_host, opts, cb) => {
        if (opts.all)
            cb(null, [target]);
        else
            cb(null, target.address, target.family);
    };
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
        const req = mod.request(url, {
            method: 'GET',
            lookup: pinned,
            agent: false,
            signal,
            headers: { 'user-agent': 'buildlite', accept: '*/*', 'accept-encoding': 'identity' },
        });
        req.once('response', resolve);
        req.once('error', (err) => reject(signal.aborted ? signal.reason : new HttpFetchError(`GET ${redact(url.href)}: ${err.message}`, undefined, { cause: err })));
        req.end();
    });
}
function addNetwork(list, spec) {
    const [addr = '', prefix] = spec.split('/');
    const family = isIP(addr);
    if (family === 0)
        throw new CodedError('INVALID_OPTION', `httpPolicy.allowNetworks: ${JSON.stringify(spec)} is not an address or CIDR`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) {
        list.addAddress(addr, type);
        return;
    }
    const bits = Number(prefix);
    if (!Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
        throw new CodedError('INVALID_OPTION', `httpPolicy.allowNetworks: bad prefix length in ${JSON.stringify(spec)}`);
    }
    list.addSubnet(addr, bits, type);
}
/** Query strings often carry signed tokens; errors show the URL without them. */
function redact(raw) {
    try {
        const u = new URL(raw);
        u.username = '';
        u.password = '';
        if (u.search)
            u.search = '?…';
        return u.href;
    }
    catch {
        return '(invalid URL)';
    }
}
function stripUndefined(o) {
    return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
//# sourceMappingURL=http-fetch.js.map