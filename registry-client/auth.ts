import type { Credential, CredentialSource } from './credentials.js';
import { RegistryError, parseDiagnostics, redactUrl } from './errors.js';

/**
 * Registry auth, as Docker does it: a `GET /v2/` (the ping) or any 401 names a
 * challenge; Basic challenges get the user's credentials on every request,
 * Bearer challenges get a token from the realm for exactly the scopes the
 * request needs (`repository:NAME:pull` or `pull,push`), cached until it expires.
 * A 401 that names a wider scope fetches a wider token once.
 */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** The minimal HTTP a token request needs; the transport provides it (no auth, no retries). */
export type TokenSender = (req: {
  method: 'GET' | 'POST';
  url: URL;
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}) => Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }>;

// Parse `Bearer realm="x",service="y", Basic realm="z"` (RFC 7235: several challenges, quoted strings).
export function parseWwwAuthenticate(header: string): Challenge[] {
  const out: Array<{ scheme: string; params: Record<string, string> }> = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t' || header[i] === ',')) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && !/[\s,=]/.test(header[i]!)) i++;
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
    while (j < n && header[j] === ' ') j++;
    if (header[j] === '=' && out.length > 0) {
      i = j + 1;
      while (i < n && header[i] === ' ') i++;
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        value = token();
      }
      out[out.length - 1]!.params[word.toLowerCase()] = value;
    } else {
      out.push({ scheme: word.toLowerCase(), params: {} });
    }
  }
  return out;
}

export function repositoryScope(repository: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${repository}:${actions}`;
}

/** Union of scopes: `repository:a:pull` + `repository:a:push` → `repository:a:pull,push`. */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const s of scopes) {
    const idx = s.lastIndexOf(':');
    if (idx <= 0) continue;
    const resource = s.slice(0, idx);
    const set = byResource.get(resource) ?? new Set<string>();
    for (const a of s.slice(idx + 1).split(',')) if (a) set.add(a);
    byResource.set(resource, set);
  }
  return [...byResource.entries()].map(([r, a]) => `${r}:${[...a].sort().join(',')}`).sort();
}

interface CachedToken {
  readonly token: string;
  readonly expires: number;
}

const MAX_TOKEN_BODY = 1 << 20; // tokens with many claims exceed 64 KiB; 1 MiB bounds a hostile realm
const DEFAULT_TOKEN_LIFETIME_S = 60; // the token spec's default when expires_in is absent
const EXPIRY_SLACK_MS = 10_000; // renew before the registry sees an expired token mid-request

export class Authenticator {
  private readonly challenges = new Map<string, Challenge>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly credentials: CredentialSource | undefined,
    private readonly send: TokenSender,
    /** Every secret seen, so error text can be scrubbed of them. */
    readonly secrets: Set<string>,
    private readonly userAgent: string,
  ) {}

  hasChallenge(host: string): boolean {
    return this.challenges.has(host);
  }

  /** Record the challenge of a ping or a 401; `undefined` means the registry wants no auth. */
  setChallenge(host: string, header: string | undefined): Challenge | undefined {
    const list = header ? parseWwwAuthenticate(header) : [];
    const ch = list.find((c) => c.scheme === 'bearer') ?? list.find((c) => c.scheme === 'basic');
    if (ch) this.challenges.set(host, ch);
    else this.challenges.delete(host);
    return ch;
  }

  async credential(registry: string): Promise<Credential | undefined> {
    const c = await this.credentials?.get(registry);
    if (c) {
      for (const s of [c.password, c.identityToken, c.username && c.password ? basic(c.username, c.password) : undefined]) {
        if (s) this.secrets.add(s);
      }
    }
    return c;
  }

  /** The Authorization header for a request to `host` needing `scopes`, or undefined (anonymous). */
  async header(registry: string, host: string, scopes: readonly string[], signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.challenges.get(host);
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const c = await this.credential(registry);
      return c?.username !== undefined && c.password !== undefined ? `Basic ${basic(c.username, c.password)}` : undefined;
    }
    if (ch.scheme !== 'bearer') return undefined;
    const merged = mergeScopes(scopes);
    const key = `${host}\n${merged.join(' ')}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.token}`;
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
  onUnauthorized(host: string, header: string | undefined, scopes: readonly string[]): string[] | undefined {
    const before = this.challenges.get(host);
    const ch = this.setChallenge(host, header);
    if (!ch) return undefined;
    const wanted = mergeScopes([...scopes, ...(ch.params.scope ? ch.params.scope.split(' ') : [])]);
    const key = `${host}\n${wanted.join(' ')}`;
    const hadToken = this.tokens.has(key);
    // Drop the cached token for these scopes: a 401 says the registry no longer takes it.
    this.tokens.delete(key);
    this.tokens.delete(`${host}\n${mergeScopes(scopes).join(' ')}`);
    const changed = !before || before.scheme !== ch.scheme || wanted.join(' ') !== mergeScopes(scopes).join(' ');
    return changed || hadToken ? wanted : undefined;
  }

  private async fetchToken(registry: string, host: string, ch: Challenge, scopes: string[], signal?: AbortSignal): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError('bearer challenge without a realm', { method: 'GET', url: registry });
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError('bearer challenge with an invalid realm URL', { method: 'GET', url: registry });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryError('bearer realm must be http(s)', { method: 'GET', url: redactUrl(url) });
    }
    const cred = await this.credential(registry);
    const service = ch.params.service;
    const headers: Record<string, string> = { 'user-agent': this.userAgent };
    let res;
    let method: 'GET' | 'POST' = 'GET';
    if (cred?.identityToken) {
      // OAuth2 refresh-token grant: the identity token from `docker login` never goes into a URL.
      method = 'POST';
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: 'buildlite' });
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      headers['content-type'] = 'application/x-www-form-urlencoded';
      res = await this.send({ method, url, headers, body: form.toString(), ...(signal ? { signal } : {}) });
    } else {
      if (service) url.searchParams.set('service', service);
      for (const s of scopes) url.searchParams.append('scope', s);
      if (cred?.username !== undefined && cred.password !== undefined) headers.authorization = `Basic ${basic(cred.username, cred.password)}`;
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
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(res.body) as typeof parsed;
    } catch {
      throw new RegistryError('token response is not JSON', { method, url: redactUrl(url) });
    }
    const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || !token) throw new RegistryError('token response holds no token', { method, url: redactUrl(url) });
    this.secrets.add(token);
    const lifetime = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    this.tokens.set(`${host}\n${scopes.join(' ')}`, { token, expires: Date.now() + lifetime * 1000 - EXPIRY_SLACK_MS });
    return token;
  }

  /** Token responses are read with this cap. */
  static readonly maxTokenBody = MAX_TOKEN_BODY;
}

function basic(user: string, password: string): string {
  return Buffer.from(`${user}:${password}`).toString('base64');
}
