import { describe, expect, it } from 'vitest';
import { isUserNamespaceMap } from './userns.js';

describe('isUserNamespaceMap', () => {
  it.each([
    ['the host: one identity line over every id', '         0          0 4294967295\n', false],
    ['a rootless builder: 0 -> the user, 1.. -> the subordinate range', '         0       1001          1\n         1     100000      65536\n', true],
    ['a container mapping every id elsewhere', '0 100000 65536\n', true],
    ['an identity map that does not cover every id', '0 0 65536\n', true],
  ])('%s', (_name, map, want) => {
    expect(isUserNamespaceMap(map)).toBe(want);
  });
});
