import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Metadata } from '@grpc/grpc-js';
import { parse as parseYaml } from 'yaml';
import { ENTITLEMENTS } from '../core/build.js';
import { isEntitlement } from '../core/request-rules.js';
import { BuildliteError, CodedError, type ErrorCode } from '../core/errors.js';
import { limitsFromRecord, quotaFromRecord, type BuildLimits, type ClientQuota } from '../core/limits.js';
import { resolvePolicy, type ClientPolicy } from './client-policy.js';
import { EMPTY_SERVICE_CONFIG, type ServiceConfig } from './service-config.js';

/**
 * Why a call was refused, as logs and metrics name it: no authorization header,
 * one that is not `Bearer <token>`, a token no grant has, or a known token not
 * allowed the call. A bounded set: it is a metric label.
 */
export const AUTH_FAILURE_REASONS = ['missing', 'malformed', 'unknown', 'denied'] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** A call refused for its token; `reason` is for the operator (the client sees only the message). */
export class AuthError extends BuildliteError {
  readonly code: ErrorCode = 'UNAUTHENTICATED';
  constructor(
    readonly reason: Exclude<AuthFailureReason, 'denied'>,
    message: string,
  ) {
    super(message);
  }
}

/** Who a token belongs to and what the operator granted it. */
export interface Principal {
  readonly client: string;
  readonly admin: boolean;
  /** Entitlements a build of this client may ask for, e.g. `network.host`. */
  readonly entitlements: ReadonlySet<string>;
  /** Its limits and quota: the token's overrides over the service's (see client-policy.ts). */
  readonly policy: ClientPolicy;
}

export interface TokenGrant {
  readonly token: string;
  readonly client: string;
  readonly admin?: boolean;
  readonly entitlements?: readonly string[];
  /** Overrides of the service's limits for this token's builds (a worker still cuts them to its ceiling). */
  readonly limits?: Partial<BuildLimits>;
  readonly quota?: Partial<ClientQuota>;
}

/** The keys of a tokens-file entry: any other is a typo that would silently grant or bound nothing. */
const GRANT_KEYS = ['token', 'client', 'admin', 'entitlements', 'limits', 'quota'];

/** Shorter tokens are guessable; refuse them when the file is loaded, not at the first call. */
const MIN_TOKEN_LENGTH = 16;

/**
 * Bearer tokens configured by the operator. Tokens are kept only as sha256
 * hashes, so a heap dump or an error never shows one, and a lookup compares
 * hashes (the timing of a Map lookup leaks nothing about the token itself).
 */
export class TokenAuth {
  private readonly byHash = new Map<string, Principal>();

  constructor(grants: readonly TokenGrant[], service: ServiceConfig = EMPTY_SERVICE_CONFIG) {
    for (const g of grants) {
      if (typeof g.token !== 'string' || g.token.length < MIN_TOKEN_LENGTH) throw new CodedError('INVALID_OPTION', `token of client "${g.client}": at least ${MIN_TOKEN_LENGTH} characters`);
      if (typeof g.client !== 'string' || !/^[A-Za-z0-9._@-]{1,100}$/.test(g.client)) throw new CodedError('INVALID_OPTION', `client name "${String(g.client)}": letters, digits, '.', '_', '@', '-'`);
      for (const e of g.entitlements ?? []) {
        if (!isEntitlement(e)) throw new CodedError('INVALID_OPTION', `client "${g.client}": unknown entitlement "${e}" (known: ${ENTITLEMENTS.join(', ')})`);
      }
      const h = hash(g.token);
      if (this.byHash.has(h)) throw new CodedError('INVALID_OPTION', `client "${g.client}": the same token is configured twice`);
      this.byHash.set(h, { client: g.client, admin: g.admin === true, entitlements: new Set(g.entitlements ?? []), policy: resolvePolicy(service, g) });
    }
  }

  get size(): number {
    return this.byHash.size;
  }

  /** Every token's principal (start-up checks and logs; never the tokens themselves). */
  principals(): Principal[] {
    return [...this.byHash.values()];
  }

  /** The caller of a request, from `authorization: Bearer <token>`; UNAUTHENTICATED otherwise. */
  authenticate(md: Metadata): Principal {
    const values = md.get('authorization');
    if (values.length === 0) throw new AuthError('missing', 'no token: send "authorization: Bearer <token>"');
    const v = values[0];
    const m = typeof v === 'string' ? /^Bearer ([\x21-\x7e]{1,4096})$/i.exec(v.trim()) : null;
    if (!m) throw new AuthError('malformed', 'the authorization header is not "Bearer <token>"');
    const p = this.byHash.get(hash(m[1]!));
    if (!p) throw new AuthError('unknown', 'the token is not valid');
    return p;
  }
}

function hash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * A tokens file, JSON or YAML: either `{tokens: [{token, client, admin?, entitlements?, limits?, quota?}]}`
 * or a list of those entries. `limits` and `quota` take the keys of the
 * service config file's sections of the same names.
 */
export async function loadTokensFile(file: string): Promise<TokenGrant[]> {
  const text = await readFile(file, 'utf8');
  let doc: unknown;
  try {
    doc = parseYaml(text) as unknown;
  } catch (err) {
    throw new CodedError('INVALID_OPTION', `tokens file ${file}: not JSON or YAML (${(err as Error).message.split('\n')[0]})`);
  }
  const list = Array.isArray(doc) ? doc : (doc as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list)) throw new CodedError('INVALID_OPTION', `tokens file ${file}: want a list of {token, client, admin?, entitlements?} (or {tokens: [...]})`);
  return list.map((e: unknown, i) => {
    const o = e as Partial<TokenGrant> | null;
    if (!o || typeof o.token !== 'string' || typeof o.client !== 'string') throw new CodedError('INVALID_OPTION', `tokens file ${file}: entry ${i + 1} needs "token" and "client"`);
    const where = `tokens file ${file}: entry ${i + 1} (client ${o.client.slice(0, 100)})`;
    for (const key of Object.keys(o)) {
      if (!GRANT_KEYS.includes(key)) throw new CodedError('INVALID_OPTION', `${where}: unknown key "${key.slice(0, 40)}" (known: ${GRANT_KEYS.join(', ')})`);
    }
    if (o.entitlements !== undefined && !(Array.isArray(o.entitlements) && o.entitlements.every((x) => typeof x === 'string'))) {
      throw new CodedError('INVALID_OPTION', `tokens file ${file}: entry ${i + 1}: entitlements must be a list of strings`);
    }
    const limits = limitsFromRecord(o.limits, `${where}: limits`);
    const quota = quotaFromRecord(o.quota, `${where}: quota`);
    return {
      token: o.token,
      client: o.client,
      ...(o.admin ? { admin: true } : {}),
      ...(o.entitlements ? { entitlements: o.entitlements } : {}),
      ...(Object.keys(limits).length ? { limits } : {}),
      ...(Object.keys(quota).length ? { quota } : {}),
    };
  });
}
