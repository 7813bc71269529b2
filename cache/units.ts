import { CodedError } from '../core/errors.js';
import { parseDuration } from '../core/duration.js';
import type { UsageItem, UsageKind } from './usage.js';
import { USAGE_KINDS } from './usage.js';

/**
 * `--filter` values for prune, ANDed: `type=<kind>` (blob, cache-record, snapshot,
 * cache-mount; BuildKit's `exec.cachemount` too), `until=<duration>` (last used
 * longer ago than that), `id=<prefix>` (of the id or the cache mount's name).
 */
export function parsePruneFilters(specs: readonly string[], now: () => number = Date.now): (item: UsageItem) => boolean {
  const tests: Array<(item: UsageItem) => boolean> = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const key = eq < 0 ? '' : spec.slice(0, eq).trim();
    const value = eq < 0 ? '' : spec.slice(eq + 1).trim();
    if (key === 'type') {
      const kind = (value === 'exec.cachemount' ? 'cache-mount' : value) as UsageKind;
      if (!USAGE_KINDS.includes(kind)) throw new CodedError('INVALID_ARGUMENT', `unknown prune filter type ${JSON.stringify(value)}`);
      tests.push((i) => i.kind === kind);
    } else if (key === 'until') {
      const ms = parseDuration(value);
      tests.push((i) => now() - i.lastUsedAt > ms);
    } else if (key === 'id') {
      tests.push((i) => i.id.startsWith(value) || (i.name?.startsWith(value) ?? false));
    } else {
      throw new CodedError('INVALID_ARGUMENT', `unknown prune filter ${JSON.stringify(spec.slice(0, 60))} (want type=, until= or id=)`);
    }
  }
  return (item) => tests.every((t) => t(item));
}
