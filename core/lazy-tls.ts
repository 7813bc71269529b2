import { createRequire } from 'node:module';

/**
 * node:tls and node:https, loaded on first use. Loading them (and OpenSSL's
 * set-up behind them) is ~10 ms of every start that imports them, and a build
 * or push against a plain-HTTP registry (a loopback one in CI, say) never
 * opens a TLS connection. Type-only imports elsewhere keep their types.
 */
const load = createRequire(import.meta.url);

export function tlsModule(): typeof import('node:tls') {
  return load('node:tls') as typeof import('node:tls');
}

export function httpsModule(): typeof import('node:https') {
  return load('node:https') as typeof import('node:https');
}
