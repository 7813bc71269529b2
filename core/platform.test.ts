import { describe, expect, it } from 'vitest';
import { platformString } from './oci.js';
import {
  bestPlatformMatch,
  checkBuildablePlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  parsePlatformList,
  platformDirName,
  platformRank,
  PlatformError,
  samePlatform,
  targetPlatforms,
} from './platform.js';

describe('parsePlatform: what people write, in the normal form', () => {
  it.each([
    ['linux/amd64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/x86-64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['linux/arm64', 'linux/arm64'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/arm64/8', 'linux/arm64'],
    ['linux/arm64/v8.0', 'linux/arm64'],
    ['linux/arm64/v9.0', 'linux/arm64/v9'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/v6', 'linux/arm/v6'],
    ['linux/arm/6', 'linux/arm/v6'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/i386', 'linux/386'],
    ['linux/386', 'linux/386'],
    ['linux/ppc64le', 'linux/ppc64le'],
    ['linux/s390x', 'linux/s390x'],
    ['linux/riscv64', 'linux/riscv64'],
    ['Linux/ARM64', 'linux/arm64'],
    [' linux/arm64 ', 'linux/arm64'],
    ['arm64', 'linux/arm64'],
    ['aarch64', 'linux/arm64'],
    ['macos/arm64', 'darwin/arm64'],
    ['windows/amd64', 'windows/amd64'],
  ])('%s -> %s', (input, want) => {
    expect(platformString(parsePlatform(input))).toBe(want);
  });

  it('an OS alone takes the host architecture', () => {
    expect(parsePlatform('linux')).toEqual(hostPlatform());
  });

  it.each(['', '/', 'linux/', '/amd64', 'linux/amd64/v8/x', 'linux/am d64', 'linux/amd64/', 'linux\\amd64', 'a'.repeat(40) + '/amd64'])('refuses %j', (input) => {
    expect(() => parsePlatform(input)).toThrow(PlatformError);
  });

  it('the error says what it wanted, with code INVALID_ARGUMENT', () => {
    try {
      parsePlatform('linux/');
      expect.fail('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(PlatformError);
      expect((err as PlatformError).code).toBe('INVALID_ARGUMENT');
      expect((err as Error).message).toMatch(/want OS\/ARCH\[\/VARIANT\]/);
    }
  });
});

describe('parsePlatformList', () => {
  it.each([
    ['linux/amd64', ['linux/amd64']],
    ['linux/amd64,linux/arm64', ['linux/amd64', 'linux/arm64']],
    ['linux/arm64, linux/amd64', ['linux/arm64', 'linux/amd64']],
    ['linux/arm64,linux/aarch64,linux/arm64/v8', ['linux/arm64']],
    ['linux/arm,linux/arm/v7,linux/arm/v6', ['linux/arm/v7', 'linux/arm/v6']],
  ])('%s', (input, want) => {
    expect(parsePlatformList(input).map(platformString)).toEqual(want);
  });

  it.each(['', 'linux/amd64,', ',linux/amd64', 'linux/amd64,,linux/arm64', 'linux/amd64,bad/'])('refuses %j', (input) => {
    expect(() => parsePlatformList(input)).toThrow(PlatformError);
  });
});

describe('checkBuildablePlatform: the one rule for a build target', () => {
  it.each(['linux/amd64', 'linux/arm64', 'linux/arm/v7', 'linux/arm/v6', 'linux/386', 'linux/ppc64le', 'linux/s390x', 'linux/riscv64', 'linux/amd64/v3'])('%s is buildable', (p) => {
    expect(() => checkBuildablePlatform(parsePlatform(p))).not.toThrow();
  });

  it.each([
    ['windows/amd64', /builds Linux images/],
    ['darwin/arm64', /builds Linux images/],
    ['linux/sparc', /the architectures are amd64, arm64/],
    ['linux/arm/x7', /variant "x7"/],
  ])('%s is refused', (p, message) => {
    expect(() => checkBuildablePlatform(parsePlatform(p))).toThrow(message);
  });
});

describe('platformRank and bestPlatformMatch: which manifest of an index serves a platform', () => {
  it.each([
    // want, have, rank (undefined: no match)
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }, 0],
    ['linux/arm64', { os: 'linux', architecture: 'arm64' }, 0],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64' }, 0],
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v9' }, undefined],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v7' }, 0],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm' }, 0],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v6' }, 1],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v5' }, 2],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v7' }, undefined],
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, 0],
    ['linux/amd64', { os: 'linux', architecture: 'amd64', variant: 'v3' }, undefined],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v2' }, 1],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64' }, 2],
    ['linux/amd64', { os: 'linux', architecture: 'arm64' }, undefined],
    ['linux/amd64', { os: 'windows', architecture: 'amd64' }, undefined],
    ['linux/amd64', undefined, undefined],
  ])('%s against %j', (want, have, rank) => {
    expect(platformRank(parsePlatform(want), have)).toBe(rank);
  });

  it('prefers the exact variant over a fallback, whatever the order', () => {
    const entries = [
      { name: 'v5', platform: { os: 'linux', architecture: 'arm', variant: 'v5' } },
      { name: 'amd64', platform: { os: 'linux', architecture: 'amd64' } },
      { name: 'v7', platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      { name: 'v6', platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    ];
    expect(bestPlatformMatch(parsePlatform('linux/arm/v7'), entries)?.name).toBe('v7');
    expect(bestPlatformMatch(parsePlatform('linux/arm/v6'), entries)?.name).toBe('v6');
    expect(bestPlatformMatch(parsePlatform('linux/arm64'), entries)).toBeUndefined();
  });
});

describe('the rest', () => {
  it.each([
    ['linux/amd64', 'linux_amd64'],
    ['linux/arm64', 'linux_arm64'],
    ['linux/arm/v7', 'linux_arm_v7'],
  ])('platformDirName(%s) = %s, as buildx names the directories', (p, dir) => {
    expect(platformDirName(parsePlatform(p))).toBe(dir);
  });

  it('hostPlatform is a normalised, buildable Linux platform', () => {
    const h = hostPlatform();
    expect(h).toEqual(normalizePlatform(h));
    expect(h.os).toBe('linux');
    expect(() => checkBuildablePlatform(h)).not.toThrow();
    if (process.arch === 'x64') expect(h).toEqual({ os: 'linux', architecture: 'amd64' });
  });

  it('samePlatform compares normal forms', () => {
    expect(samePlatform({ os: 'linux', architecture: 'aarch64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(samePlatform({ os: 'linux', architecture: 'arm' }, { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
  });
});

describe('targetPlatforms: what every entry point applies to a build request', () => {
  it('defaults to the host platform', () => {
    expect(targetPlatforms(undefined)).toEqual([hostPlatform()]);
    expect(targetPlatforms([])).toEqual([hostPlatform()]);
  });

  it('normalises and drops duplicates, keeping the order', () => {
    expect(targetPlatforms([{ os: 'linux', architecture: 'aarch64' }, { os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }])).toEqual([
      { os: 'linux', architecture: 'arm64' },
      { os: 'linux', architecture: 'amd64' },
    ]);
  });

  it('refuses what cannot be built, and too many', () => {
    expect(() => targetPlatforms([{ os: 'linux', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' }])).toThrow(/windows\/amd64 is not supported/);
    const many = Array.from({ length: 17 }, (_, i) => ({ os: 'linux', architecture: 'arm', variant: `v${i + 5}` }));
    expect(() => targetPlatforms(many)).toThrow(/at most 16/);
  });
});
