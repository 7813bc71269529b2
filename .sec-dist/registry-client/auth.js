import { RegistryError, parseDiagnostics, redactUrl } from './errors.js';
// Parse `Bearer realm="x",service="y", Basic realm="z"` (RFC 7235: several challenges, quoted strings).
export function parseWwwAuthenticate(header) {
    const out = [];
    let i = 0;
    const n = header.length;
    const skipWs = () => {
        while (i < n && (header[i] === ' ' || header[i] === '\t' || header[i] === ','))
            i++;
    };
    const token = () => {
        const start = i;
        while (i < n && !/[\s,=]/.test(header[i]))
            i++;
        return header.slice(start, i);
    };
    while (i < n) {
        skipWs();
        const word = token();
        if (!word) {
            i++;
            continue;
        }
        let j = i;
        while (j < n && header[j] === ' ')
            j++;
        if (header[j] === '=' && out.length > 0) {
            i = j + 1;
            while (i < n && header[i] === ' ')
                i++;
            let value = '';
            if (header[i] === '"') {
                i++;
                while (i < n && header[i] !== '"') {
                    if (header[i] === '\\' && i + 1 < n)
                        i++;
                    value += header[i];
                    i++;
                }
                i++;
            }
            else {
                value = token();
            }
            out[out.length - 1].params[word.toLowerCase()] = value;
        }
        else {
            out.push({ scheme: word.toLowerCase(), params: {} });
        }
    }
    return out;
}
export function repositoryScope(repository, actions) {
    return `repository:${repository}:${actions}`;
}
/** Union of scopes: `repository:a:pull` + `repository:a:push` → `repository:a:pull,push`. */
export function mergeScopes(scopes) {
    const byResource = new Map();
    for (const s of scopes) {
        const idx = s.lastIndexOf(':');
        if (idx <= 0)
            continue;
        const resource = s.slice(0, idx);
        const set = byResource.get(resource) ?? new Set();
        for (const a of s.slice(idx + 1).split(','))
            if (a)
                set.add(a);
        byResource.set(resource, set);
    }
    return [...byResource.entries()].map(([r, a]) => `${r}:${[...a].sort().join(',')}`).sort();
}
const MAX_TOKEN_BODY = 1 << 20; // tokens with many claims exceed 64 KiB; 1 MiB bounds a hostile realm
const DEFAULT_TOKEN_LIFETIME_S = 60; // the token spec's default when expires_in is absent
const EXPIRY_SLACK_MS = 10_000; // renew before the registry sees an expired token mid-request
export class Authenticator {
    credentials;
    send;
    secrets;
    userAgent;
    challenges = new Map();
    tokens = new Map();
    inflight = new Map();
    constructor(credentials, send, 
    /** Every secret seen, so error text can be scrubbed of them. */
    secrets, userAgent) {
        this.credentials = credentials;
        this.send = send;
        this.secrets = secrets;
        this.userAgent = userAgent;
    }
    hasChallenge(host) {
        return this.challenges.has(host);
    }
    /** Record the challenge of a ping or a 401; `undefined` means the registry wants no auth. */
    setChallenge(host, header) {
        const list = header ? parseWwwAuthenticate(header) : [];
        const ch = list.find((c) => c.scheme === 'bearer') ?? list.find((c) => c.scheme === 'basic');
        if (ch)
            this.challenges.set(host, ch);
        else
            this.challenges.delete(host);
        return ch;
    }
    async credential(registry) {
        const c = await this.credentials?.get(registry);
        if (c) {
            for (const s of [c.password, c.identityToken, c.username && c.password ? basic(c.username, c.password) : undefined]) {
                if (s)
                    this.secrets.add(s);
            }
        }
        return c;
    }
    /** The Authorization header for a request to `host` needing `scopes`, or undefined (anonymous). */
    async header(registry, host, scopes, signal) {
        const ch = this.challenges.get(host);
        if (!ch)
            return undefined;
        if (ch.scheme === 'basic') {
            const c = await this.credential(registry);
            return c?.username !== undefined && c.password !== undefined ? `Basic ${basic(c.username, c.password)}` : undefined;
        }
        if (ch.scheme !== 'bearer')
            return undefined;
        const merged = mergeScopes(scopes);
        const key = `${host}\n${merged.join(' ')}`;
        const cached = this.tokens.get(key);
        if (cached && cached.expires > Date.now())
            return `Bearer ${cached.token}`;
        let p = this.inflight.get(key);
        if (!p) {
            p = this.fetchToken(registry, host, ch, merged, signal).finally(() => this.inflight.delete(key));
            this.inflight.set(key, p);
        }
        return `Bearer ${await p}`;
    }
    /**
     * After a 401: take the new challenge, and say which scopes to retry with, or
     * undefined when a retry cannot help (same challenge, same scopes, token was fresh).
     */
    onUnauthorized(host, header, scopes) {
        const before = this.challenges.get(host);
        const ch = this.setChallenge(host, header);
        if (!ch)
            return undefined;
        const wanted = mergeScopes([...scopes, ...(ch.params.scope ? ch.params.scope.split(' ') : [])]);
        const key = `${host}\n${wanted.join(' ')}`;
        const hadToken = this.tokens.has(key);
        // Drop the cached token for these scopes: a 401 says the registry no longer takes it.
        this.tokens.delete(key);
        this.tokens.delete(`${host}\n${mergeScopes(scopes).join(' ')}`);
        const changed = !before || before.scheme !== ch.scheme || wanted.join(' ') !== mergeScopes(scopes).join(' ');
        return changed || hadToken ? wanted : undefined;
    }
    async fetchToken(registry, host, ch, scopes, signal) {
        const realm = ch.params.realm;
        if (!realm)
            throw new RegistryError('bearer challenge without a realm', { method: 'GET', url: registry });
        let url;
        try {
            url = new URL(realm);
        }
        catch {
            throw new RegistryError('bearer challenge with an invalid realm URL', { method: 'GET', url: registry });
        }
        if (url.protocol !== 'https:' && url.protocol !== 'http:') {
            throw new RegistryError('bearer realm must be http(s)', { method: 'GET', url: redactUrl(url) });
        }
        const cred = await this.credential(registry);
        const service = ch.params.service;
        const headers = { 'user-agent': this.userAgent };
        let res;
        let method = 'GET';
        if (cred?.identityToken) {
            // OAuth2 refresh-token grant: the identity token from `docker login` never goes into a URL.
            method = 'POST';
            const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'buildlite' });
            if (service)
                form.set('service', service);
            if (scopes.length)
                form.set('scope', scopes.join(' '));
            headers['content-type'] = 'application/x-www-form-urlencoded';
            res = await this.send({ method, url, headers, body: form.toString(), ...(signal ? { signal } : {}) });
        }
        else {
            if (service)
                url.searchParams.set('service', service);
            for (const s of scopes)
                url.searchParams.append('scope', s);
            if (cred?.username !== undefined && cred.password !== undefined)
                headers.authorization = `Basic ${basic(cred.username, cred.password)}`;
            res = await this.send({ method, url, headers, ...(signal ? { signal } : {}) });
        }
        if (res.status !== 200) {
            throw RegistryError.fromResponse({
                action: `get a token for ${scopes.join(' ') || 'the registry'}`,
                status: res.status,
                method,
                url: redactUrl(url),
                diagnostics: parseDiagnostics(res.body.slice(0, 4096), this.secrets),
            });
        }
        let parsed;
        try {
            parsed = JSON.parse(res.body);
        }
        catch {
            throw new RegistryError('token response is not JSON', { method, url: redactUrl(url) });
        }
        const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token;
        if (typeof token !== 'string' || !token)
            throw new RegistryError('token response holds no token', { method, url: redactUrl(url) });
        this.secrets.add(token);
        const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_LIFETIME_S;
        this.tokens.set(`${host}\n${scopes.join(' ')}`, { token, expires: Date.now() + lifetime * 1000 - EXPIRY_SLACK_MS });
        return token;
    }
    /** Token responses are read with this cap. */
    static maxTokenBody = MAX_TOKEN_BODY;
}
function basic(user, password) {
    return Buffer.from(`${user}:${password}`).toString('base64');
}
//# sourceMappingURL=auth.js.map