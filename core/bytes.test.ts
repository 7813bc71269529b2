import { describe, expect, it } from 'vitest';
import { formatBytes, parseBytes } from './bytes.js';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [1 << 20, '1 MiB'],
    [4 << 20, '4 MiB'],
    [(10 << 20) + 52, '10.0 MiB'],
    [2 * 1024 ** 3, '2 GiB'],
  ])('%d → %s', (n, want) => {
    expect(formatBytes(n)).toBe(want);
  });
});

describe('parseBytes', () => {
  it('parses sizes in binary units, and refuses junk', () => {
    expect(parseBytes('4096')).toBe(4096);
    expect(parseBytes('512MB')).toBe(512 * 1024 ** 2);
    expect(parseBytes('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(() => parseBytes('10 parsecs')).toThrow(/not a size/);
  });
});
