/**
 * What the operator allows each token, resolved once when the tokens are
 * loaded: the limits the API enforces itself, the limits queued with each
 * build for the workers, and the client's quota. Precedence (core/limits.ts):
 * the worker's ceiling > the token's overrides > the service defaults (config
 * file and serve flags) > the built-in defaults. The API knows nothing of
 * worker ceilings; each worker cuts what a build carries to its own.
 */
import { BUILD_LIMIT_DEFAULTS, formatLimit, LIMIT_SPECS, mergeLimits, mergeQuota, setLimits, type BuildLimits, type ClientQuota, type LimitName } from '../core/limits.js';
import type { ServiceConfig } from './service-config.js';

export interface ClientPolicy {
  /** Every limit, defaults filled in: the API enforces the context and Dockerfile sizes from here. */
  readonly limits: BuildLimits;
  /**
   * Only what the operator set (service defaults and the token's overrides):
   * queued with each build. A worker fills every other limit from its own
   * ceiling, and cuts these to it.
   */
  readonly jobLimits: Partial<BuildLimits>;
  readonly quota: ClientQuota;
}

/** The operator's overrides for one token (its entry in the tokens file). */
export interface TokenOverrides {
  readonly limits?: Partial<BuildLimits>;
  readonly quota?: Partial<ClientQuota>;
}

/** Limits the API enforces itself, before a build is queued: no worker ceiling cuts them. */
export const API_ENFORCED_LIMITS: ReadonlySet<LimitName> = new Set(['maxContextBytes', 'maxDockerfileBytes']);

export function resolvePolicy(service: ServiceConfig, token: TokenOverrides = {}): ClientPolicy {
  return {
    limits: mergeLimits(service.limits, token.limits),
    jobLimits: setLimits(service.limits, token.limits),
    quota: mergeQuota(service.quota, token.quota),
  };
}

/**
 * Limits a service default or a token's override sets above the built-in
 * default, which is every worker's ceiling unless the worker was started
 * with a higher one: on such a worker the build gets less than it was
 * given. The API cannot know the workers' ceilings (workers come and go), so
 * it says this once at start, for the operator to check.
 */
export function aboveDefaultCeilings(limits: Partial<BuildLimits>): Array<{ limit: string; value: string; ceiling: string }> {
  const out: Array<{ limit: string; value: string; ceiling: string }> = [];
  for (const [k, v] of Object.entries(limits) as Array<[LimitName, number]>) {
    if (API_ENFORCED_LIMITS.has(k)) continue;
    const def = BUILD_LIMIT_DEFAULTS[k];
    // A CPU quota of 0 is none: the default ceiling (0) is already the largest.
    const above = k === 'cpus' ? def !== 0 && (v === 0 || v > def) : v > def;
    if (above) out.push({ limit: LIMIT_SPECS[k].key, value: formatLimit(k, v), ceiling: formatLimit(k, def) });
  }
  return out;
}

/**
 * What the API says at start about limits set above a built-in worker
 * ceiling, by the service defaults or by a token: a worker cuts them to its
 * own ceiling, so builds get them only on workers started with a higher one.
 * The API cannot see the workers' ceilings, so it warns once, for the operator to check.
 */
export function ceilingWarnings(service: ServiceConfig, tokens: ReadonlyArray<{ readonly client: string; readonly limits?: Partial<BuildLimits> }>): Array<{ source: string; limit: string; value: string; ceiling: string; message: string }> {
  const sources: Array<[string, Partial<BuildLimits>]> = [['service defaults', service.limits], ...tokens.map((g): [string, Partial<BuildLimits>] => [`client ${g.client}`, g.limits ?? {}])];
  return sources.flatMap(([source, limits]) =>
    aboveDefaultCeilings(limits).map((a) => ({
      source,
      ...a,
      message: `${source}: ${a.limit} ${a.value} is above the built-in worker ceiling of ${a.ceiling}: a worker cuts it to its own ${a.limit}, so builds get more only on workers started with a higher one`,
    })),
  );
}
