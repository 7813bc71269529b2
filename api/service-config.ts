/**
 * The service config file of `buildlite serve --config FILE` (YAML or JSON):
 * what the operator bounds every build and every client to, unless a token's
 * entry in the tokens file says otherwise.
 *
 *   limits:                      # service defaults for every build (keys: LIMIT_SPECS)
 *     step-timeout: 30m
 *     memory: 2GiB
 *     max-context-size: 1GiB
 *   quota:                       # per client (keys: QUOTA_SPECS)
 *     max-concurrent-builds: 4
 *     max-submissions-per-minute: 30
 *     over-quota: queue          # or refuse
 *
 * Every key is checked when the file is loaded: an unknown one (a typo that
 * would silently leave a build unbounded) stops `serve` at start, naming the
 * file and the key.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { CodedError } from '../core/errors.js';
import { limitsFromRecord, quotaFromRecord, setLimits, type BuildLimits, type ClientQuota } from '../core/limits.js';

export interface ServiceConfig {
  /** Service defaults: over the built-in defaults, under a token's own limits. */
  readonly limits: Partial<BuildLimits>;
  /** Every client's quota, unless its token has its own. */
  readonly quota: Partial<ClientQuota>;
}

export const EMPTY_SERVICE_CONFIG: ServiceConfig = { limits: {}, quota: {} };

const SECTIONS = ['limits', 'quota'] as const;

/** Reads and checks a config file; INVALID_OPTION naming the file (and the key) otherwise. */
export async function loadServiceConfig(file: string): Promise<ServiceConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CodedError('INVALID_OPTION', `config file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) as unknown;
  } catch (err) {
    throw new CodedError('INVALID_OPTION', `config file ${file}: not JSON or YAML (${(err as Error).message.split('\n')[0]})`);
  }
  return parseServiceConfig(doc, `config file ${file}`);
}

/** A parsed document → the config; `where` prefixes every message. An empty document is an empty config. */
export function parseServiceConfig(doc: unknown, where: string): ServiceConfig {
  if (doc === null || doc === undefined) return EMPTY_SERVICE_CONFIG;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new CodedError('INVALID_OPTION', `${where}: want a mapping with ${SECTIONS.join(' and ')}`);
  for (const key of Object.keys(doc)) {
    if (!(SECTIONS as readonly string[]).includes(key)) throw new CodedError('INVALID_OPTION', `${where}: unknown key "${key.slice(0, 40)}" (known: ${SECTIONS.join(', ')})`);
  }
  const o = doc as Record<string, unknown>;
  return { limits: limitsFromRecord(o['limits'], `${where}: limits`), quota: quotaFromRecord(o['quota'], `${where}: quota`) };
}

/**
 * The limits given as `serve` flags (`--max-context-size`,
 * `--max-dockerfile-size`) over the file's: flag > file > built-in default.
 * They are service defaults too, so a token's own limit still wins over them.
 */
export function withFlagLimits(config: ServiceConfig, flags: Partial<BuildLimits>): ServiceConfig {
  return { ...config, limits: setLimits(config.limits, flags) };
}
