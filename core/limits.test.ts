import { describe, expect, it } from 'vitest';
import { LimitError } from './limit-error.js';
import { BUILD_LIMIT_DEFAULTS, clampLimits, CLIENT_QUOTA_DEFAULTS, formatLimit, isLimitedReason, limitsFromRecord, mergeLimits, mergeQuota, parseLimit, quotaFromRecord, setLimits } from './limits.js';

describe('build limits', () => {
  it.each([
    ['stepTimeoutMs', '30m', 30 * 60_000],
    ['memoryBytes', '256MiB', 256 * 2 ** 20],
    ['cpus', '1.5', 1.5],
    ['cpus', '0', 0],
    ['pids', '512', 512],
  ] as const)('parses %s %s', (name, text, want) => {
    expect(parseLimit(name, text)).toBe(want);
  });

  it.each([
    ['memoryBytes', 'lots'],
    ['pids', '0'],
    ['pids', '1.5'],
    ['cpus', '-1'],
    ['stepTimeoutMs', '10'],
  ] as const)('refuses %s %s, naming the key', (name, text) => {
    expect(() => parseLimit(name, text)).toThrow(/^(step-timeout|memory|pids|cpus) /);
  });

  it('formats values as messages show them', () => {
    expect(formatLimit('memoryBytes', 256 * 2 ** 20)).toBe('256 MiB');
    expect(formatLimit('stepTimeoutMs', 10_000)).toBe('10s');
    expect(formatLimit('cpus', 1.5)).toBe('1.5 CPUs');
    expect(formatLimit('cpus', 0)).toBe('no quota');
  });

  it('reads a limits mapping and refuses unknown keys', () => {
    expect(limitsFromRecord({ memory: '2GiB', 'step-timeout': '10s', cpus: 2 }, 'tokens.yaml: client ci')).toEqual({ memoryBytes: 2 * 2 ** 30, stepTimeoutMs: 10_000, cpus: 2 });
    expect(() => limitsFromRecord({ memroy: '2GiB' }, 'config.yaml')).toThrow(/config.yaml: unknown limit "memroy"/);
    expect(() => limitsFromRecord(['x'], 'config.yaml')).toThrow(/must be a mapping/);
    expect(() => limitsFromRecord({ memory: 'lots' }, 'config.yaml: limits')).toThrow(/^config\.yaml: limits: memory "lots": /);
  });

  it('merges later layers over earlier ones, on the defaults', () => {
    const m = mergeLimits({ memoryBytes: 1 }, { memoryBytes: 2, pids: 10 });
    expect(m).toEqual({ ...BUILD_LIMIT_DEFAULTS, memoryBytes: 2, pids: 10 });
  });

  it('cuts what a build asks to the worker ceiling; a CPU quota of 0 is none, the largest', () => {
    const ceiling = { ...BUILD_LIMIT_DEFAULTS, memoryBytes: 1000, cpus: 2 };
    expect(clampLimits(ceiling, { memoryBytes: 5000 }).memoryBytes).toBe(1000);
    expect(clampLimits(ceiling, { memoryBytes: 10 }).memoryBytes).toBe(10);
    expect(clampLimits(ceiling, { cpus: 0 }).cpus).toBe(2);
    expect(clampLimits(ceiling, { cpus: 1 }).cpus).toBe(1);
    expect(clampLimits({ ...ceiling, cpus: 0 }, { cpus: 3 }).cpus).toBe(3);
    expect(clampLimits(ceiling, undefined)).toEqual(ceiling);
  });

  it('setLimits keeps only what the layers set: nothing of the defaults reaches a job', () => {
    expect(setLimits(undefined, { memoryBytes: 1, pids: 5 }, { memoryBytes: 2, stepTimeoutMs: undefined })).toEqual({ memoryBytes: 2, pids: 5 });
    expect(setLimits()).toEqual({});
  });

  it('reads a quota mapping; unknown keys and bad values are errors naming where', () => {
    expect(quotaFromRecord({ 'max-concurrent-builds': 4, 'max-submissions-per-minute': '30', 'over-quota': 'refuse' }, 'c.yaml: quota')).toEqual({ maxConcurrentBuilds: 4, maxSubmissionsPerMinute: 30, overQuota: 'refuse' });
    expect(quotaFromRecord(undefined, 'x')).toEqual({});
    expect(() => quotaFromRecord({ 'max-concurent-builds': 4 }, 'c.yaml: quota')).toThrow(/^c\.yaml: quota: unknown quota "max-concurent-builds" \(known: max-concurrent-builds, /);
    expect(() => quotaFromRecord({ 'over-quota': 'drop' }, 'c.yaml')).toThrow('c.yaml: over-quota "drop": want queue or refuse');
    for (const bad of [0, -1, 1.5, '2x', true]) expect(() => quotaFromRecord({ 'max-concurrent-builds': bad }, 'c.yaml')).toThrow(/want a positive integer/);
    expect(() => quotaFromRecord('4', 'c.yaml')).toThrow(/must be a mapping/);
  });

  it('merges quotas over the defaults, later layers winning', () => {
    expect(mergeQuota({ maxConcurrentBuilds: 2, overQuota: 'refuse' }, { maxConcurrentBuilds: 9 })).toEqual({ ...CLIENT_QUOTA_DEFAULTS, maxConcurrentBuilds: 9, overQuota: 'refuse' });
  });

  it('a LimitError names its limit and value in details (what metrics and clients read)', () => {
    const e = new LimitError('rate', 60, 'too fast', { retryAfterMs: 1500 });
    expect(e.toWire()).toEqual({ code: 'LIMIT_EXCEEDED', message: 'too fast', retryable: false, details: { limit: 'rate', value: 60, retryAfterMs: 1500 } });
    expect(isLimitedReason('maxContextBytes')).toBe(true);
    expect(isLimitedReason('concurrency')).toBe(true);
    expect(isLimitedReason('toString')).toBe(false);
  });
});
