import { describe, expect, it } from 'vitest';
import { parsePruneFilters } from './index.js';

describe('prune option parsing', () => {
  it('builds filters that AND their terms', () => {
    const now = 10 * 86_400_000;
    const f = parsePruneFilters(['type=cache-mount', 'until=24h'], () => now);
    const item = (kind: 'cache-mount' | 'snapshot', lastUsedAt: number) => ({ kind, id: 'x', size: 1, lastUsedAt, inUse: false });
    expect(f(item('cache-mount', 0))).toBe(true);
    expect(f(item('cache-mount', now - 1000))).toBe(false);
    expect(f(item('snapshot', 0))).toBe(false);
    expect(parsePruneFilters(['id=go'])({ ...item('cache-mount', 0), id: 'abc', name: 'go-build' })).toBe(true);
    expect(() => parsePruneFilters(['color=red'])).toThrow(/unknown prune filter/);
  });
});
