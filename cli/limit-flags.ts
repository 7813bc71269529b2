import { LIMIT_SPECS, parseLimit, type BuildLimits, type LimitName } from '../core/limits.js';
import { UsageError } from './usage.js';

/**
 * One `--KEY VALUE` flag per operator limit, made from core/limits.ts's
 * table so a new limit gets its flag on `build`, `worker` and `serve` at once.
 */
const NAMES = Object.keys(LIMIT_SPECS) as LimitName[];

const LIMIT_FLAGS: Readonly<Record<string, { readonly type: 'string' }>> = Object.fromEntries(NAMES.map((n) => [LIMIT_SPECS[n].key, { type: 'string' }]));

/**
 * A command's parseArgs options with the limit flags added. It keeps the
 * type of the command's own options: the limits are read by name with
 * `limitsFromFlags`, since their keys come from the table at run time.
 */
export function withLimitFlags<O extends object>(flags: O): O {
  return { ...flags, ...LIMIT_FLAGS };
}

/** The limit flags given on the command line, as `--memory`. */
export function limitFlagsGiven(values: object): string[] {
  return NAMES.map((n) => LIMIT_SPECS[n].key).filter((k) => (values as Record<string, unknown>)[k] !== undefined).map((k) => `--${k}`);
}

/** The limits set by flags; a bad value is a usage error naming its flag. */
export function limitsFromFlags(command: string, values: object): Partial<BuildLimits> {
  const out: Partial<Record<LimitName, number>> = {};
  for (const n of NAMES) {
    const v = (values as Record<string, unknown>)[LIMIT_SPECS[n].key];
    if (typeof v !== 'string') continue;
    try {
      out[n] = parseLimit(n, v);
    } catch (err) {
      throw new UsageError(`--${(err as Error).message}`, command);
    }
  }
  return out;
}
