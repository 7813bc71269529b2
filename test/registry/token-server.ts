import { randomBytes, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { makeSelfSigned } from '../helpers/tls.js';

/** Who may do what: user → repository → actions. `*` as user means anonymous. */
export type Grants = Record<string, Record<string, string[]>>;

export interface TokenServer extends AsyncDisposable {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly rootCertFile: string;
  /** Every token request: the scopes asked for, and how the caller authenticated. */
  readonly requests: Array<{ scopes: string[]; user: string; via: 'basic' | 'refresh' | 'anonymous' }>;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A minimal Docker token server (the `auth.token` realm): checks Basic
 * credentials or an OAuth2 refresh token, grants the intersection of the asked
 * scopes with `grants`, and signs an RS256 JWT whose x5c is a self-signed cert
 * the registry trusts through `rootcertbundle`.
 */
export async function startTokenServer(dir: string, users: Record<string, string>, grants: Grants, refreshTokens: Record<string, string> = {}): Promise<TokenServer> {
  const { certFile, keyFile } = await makeSelfSigned(dir, 'token-signer');
  const key = await readFile(keyFile, 'utf8');
  const certDer = (await readFile(certFile, 'utf8')).replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const service = 'buildlite-test-registry';
  const issuer = 'buildlite-test-issuer';
  const requests: TokenServer['requests'] = [];

  const grant = (user: string, scopes: string[]) =>
    scopes.flatMap((s) => {
      const [type, name, actions] = [s.slice(0, s.indexOf(':')), s.slice(s.indexOf(':') + 1, s.lastIndexOf(':')), s.slice(s.lastIndexOf(':') + 1)];
      if (type !== 'repository') return [];
      const allowed = new Set([...(grants[user]?.[name] ?? []), ...(grants['*']?.[name] ?? [])]);
      const given = actions.split(',').filter((a) => allowed.has(a));
      return given.length ? [{ type, name, actions: given }] : [];
    });

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      let user = '*';
      let via: 'basic' | 'refresh' | 'anonymous' = 'anonymous';
      let scopes = url.searchParams.getAll('scope');
      if (req.method === 'POST') {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        const who = refreshTokens[form.get('refresh_token') ?? ''];
        if (form.get('grant_type') !== 'refresh_token' || !who) {
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_grant"}');
          return;
        }
        user = who;
        via = 'refresh';
        scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
      } else if (req.headers.authorization?.startsWith('Basic ')) {
        const [u, ...p] = Buffer.from(req.headers.authorization.slice(6), 'base64').toString().split(':');
        if (!u || users[u] !== p.join(':')) {
          res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
          return;
        }
        user = u;
        via = 'basic';
      }
      requests.push({ scopes, user, via });
      const now = Math.floor(Date.now() / 1000);
      const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer] };
      const claims = { iss: issuer, sub: user, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access: grant(user, scopes) };
      const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const token = `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const stop = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
    });
  server.unref();
  return { realm: `http://127.0.0.1:${port}/token`, service, issuer, rootCertFile: certFile, requests, stop, [Symbol.asyncDispose]: stop };
}
