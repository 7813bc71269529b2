import { describe, expect, it } from 'vitest';
import { parseBytes, parseDuration, parsePruneFilters, type UsageItem } from './index.js';

describe('prune option parsing', () => {
  it('parses sizes and durations, and refuses junk', () => {
    expect(parseBytes('4096')).toBe(4096);
    expect(parseBytes('512MB')).toBe(512 * 1024 ** 2);
    expect(parseBytes('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(() => parseBytes('10 parsecs')).toThrow(/not a size/);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
    expect(() => parseDuration('')).toThrow(/not a duration/);
  });

  it('builds filters that AND their terms', () => {
    const now = 10 * 86_400_000;
    const f = parsePruneFilters(['type=cache-mount', 'until=24h'], () => now);
    const item = (kind: UsageItem['kind'], lastUsedAt: number): UsageItem => ({ kind, id: 'x', size: 1, lastUsedAt, inUse: false });
    expect(f(item('cache-mount', 0))).toBe(true);
    expect(f(item('cache-mount', now - 1000))).toBe(false);
    expect(f(item('blob', 0))).toBe(false);
    expect(parsePruneFilters(['id=go'])({ ...item('cache-mount', 0), id: 'abc', name: 'go-build' })).toBe(true);
    expect(() => parsePruneFilters(['color=red'])).toThrow(/unknown prune filter/);
  });
});
