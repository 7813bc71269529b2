import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILD_LIMIT_DEFAULTS, CLIENT_QUOTA_DEFAULTS } from '../core/limits.js';
import { loadTokensFile, TokenAuth } from './auth.js';
import { aboveDefaultCeilings, ceilingWarnings, resolvePolicy } from './client-policy.js';
import { EMPTY_SERVICE_CONFIG, loadServiceConfig, parseServiceConfig, withFlagLimits } from './service-config.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('service config file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-svc-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads limits and quota in the keys of LIMIT_SPECS and QUOTA_SPECS', async () => {
    const file = path.join(dir, 'ok.yaml');
    await writeFile(file, 'limits:\n  step-timeout: 30m\n  memory: 2GiB\n  max-context-size: 1GiB\nquota:\n  max-concurrent-builds: 4\n  max-submissions-per-minute: 30\n  over-quota: refuse\n');
    expect(await loadServiceConfig(file)).toEqual({
      limits: { stepTimeoutMs: 30 * 60_000, memoryBytes: 2 * GiB, maxContextBytes: GiB },
      quota: { maxConcurrentBuilds: 4, maxSubmissionsPerMinute: 30, overQuota: 'refuse' },
    });
  });

  it('an empty file sets nothing', async () => {
    const file = path.join(dir, 'empty.yaml');
    await writeFile(file, '');
    expect(await loadServiceConfig(file)).toEqual(EMPTY_SERVICE_CONFIG);
  });

  it.each([
    ['a top-level typo', 'limit:\n  memory: 1GiB\n', /^config file \S+bad\.yaml: unknown key "limit" \(known: limits, quota\)$/],
    ['an unknown limit', 'limits:\n  memroy: 1GiB\n', /^config file \S+bad\.yaml: limits: unknown limit "memroy" \(known: step-timeout, /],
    ['an unknown quota', 'quota:\n  max-builds: 3\n', /^config file \S+bad\.yaml: quota: unknown quota "max-builds" \(known: max-concurrent-builds, /],
    ['a bad value', 'limits:\n  memory: lots\n', /^config file \S+bad\.yaml: limits: memory "lots": /],
    ['a bad policy', 'quota:\n  over-quota: drop\n', /^config file \S+bad\.yaml: quota: over-quota "drop": want queue or refuse$/],
    ['a list', '- limits\n', /^config file \S+bad\.yaml: want a mapping with limits and quota$/],
    ['not YAML', 'limits: [\n', /^config file \S+bad\.yaml: not JSON or YAML/],
  ])('refuses %s, naming the file and the key', async (_what, text, message) => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, text);
    await expect(loadServiceConfig(file)).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(message) });
  });

  it('a missing file is named', async () => {
    await expect(loadServiceConfig(path.join(dir, 'nope.yaml'))).rejects.toThrow(/^config file \S+nope\.yaml: cannot read it \(ENOENT\)$/);
  });

  it('precedence: a serve flag over the file over the built-in default, and a token over both', () => {
    const file = parseServiceConfig({ limits: { 'max-context-size': '1GiB', 'max-dockerfile-size': '64KiB', memory: '1GiB' } }, 'c.yaml');
    const config = withFlagLimits(file, { maxContextBytes: 3 * GiB });
    // The flag wins over the file; the file's other limits stay.
    expect(config.limits).toEqual({ maxContextBytes: 3 * GiB, maxDockerfileBytes: 64 * 1024, memoryBytes: GiB });
    const plain = resolvePolicy(config);
    expect(plain.limits).toEqual({ ...BUILD_LIMIT_DEFAULTS, maxContextBytes: 3 * GiB, maxDockerfileBytes: 64 * 1024, memoryBytes: GiB });
    // A token's own limit wins over the service's, flag or file.
    const big = resolvePolicy(config, { limits: { maxContextBytes: 5 * GiB }, quota: { maxConcurrentBuilds: 2 } });
    expect(big.limits.maxContextBytes).toBe(5 * GiB);
    expect(big.limits.memoryBytes).toBe(GiB);
    expect(big.quota).toEqual({ ...CLIENT_QUOTA_DEFAULTS, maxConcurrentBuilds: 2 });
    // Nothing set anywhere: the built-in defaults.
    expect(resolvePolicy(EMPTY_SERVICE_CONFIG)).toEqual({ limits: BUILD_LIMIT_DEFAULTS, jobLimits: {}, quota: CLIENT_QUOTA_DEFAULTS });
  });

  it('a job carries only what the operator set: the worker fills the rest from its own ceiling', () => {
    const config = parseServiceConfig({ limits: { memory: '1GiB' }, quota: { 'over-quota': 'refuse' } }, 'c.yaml');
    expect(resolvePolicy(config, { limits: { stepTimeoutMs: 5000 } }).jobLimits).toEqual({ memoryBytes: GiB, stepTimeoutMs: 5000 });
    expect(resolvePolicy(config).quota.overQuota).toBe('refuse');
  });

  it('names each limit set above a built-in worker ceiling (not those the API enforces itself)', () => {
    expect(aboveDefaultCeilings({ memoryBytes: 8 * GiB, stepTimeoutMs: 60_000, maxContextBytes: 10 * GiB, cpus: 2 })).toEqual([{ limit: 'memory', value: '8 GiB', ceiling: '4 GiB' }]);
    expect(aboveDefaultCeilings({ pids: 100_000 })).toEqual([{ limit: 'pids', value: '100000', ceiling: '4096' }]);
    const warnings = ceilingWarnings(parseServiceConfig({ limits: { 'step-timeout': '3h' } }, 'c.yaml'), [{ client: 'ci' }, { client: 'mono', limits: { memoryBytes: 8 * GiB } }]);
    expect(warnings.map((w) => w.message)).toEqual([
      'service defaults: step-timeout 10800s is above the built-in worker ceiling of 3600s: a worker cuts it to its own step-timeout, so builds get more only on workers started with a higher one',
      'client mono: memory 8 GiB is above the built-in worker ceiling of 4 GiB: a worker cuts it to its own memory, so builds get more only on workers started with a higher one',
    ]);
  });
});

describe('tokens file: per-token limits and quota', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-tokens-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads limits and quota of an entry; the principal gets them over the service config', async () => {
    const file = path.join(dir, 'tokens.yaml');
    await writeFile(file, [
      'tokens:',
      '  - { token: ci-token-0123456789abcdef, client: ci, limits: { max-context-size: 4GiB, step-timeout: 5s }, quota: { max-concurrent-builds: 2 } }',
      '  - { token: web-token-0123456789abcdef, client: web }',
      '',
    ].join('\n'));
    const grants = await loadTokensFile(file);
    expect(grants).toEqual([
      { token: 'ci-token-0123456789abcdef', client: 'ci', limits: { maxContextBytes: 4 * GiB, stepTimeoutMs: 5000 }, quota: { maxConcurrentBuilds: 2 } },
      { token: 'web-token-0123456789abcdef', client: 'web' },
    ]);
    const auth = new TokenAuth(grants, parseServiceConfig({ limits: { 'max-context-size': '1GiB', 'max-dockerfile-size': '2MiB' }, quota: { 'over-quota': 'refuse' } }, 'c.yaml'));
    const [ci, web] = auth.principals();
    expect(ci!.policy.limits.maxContextBytes).toBe(4 * GiB);
    expect(ci!.policy.jobLimits).toEqual({ maxContextBytes: 4 * GiB, maxDockerfileBytes: 2 * MiB, stepTimeoutMs: 5000 });
    expect(ci!.policy.quota).toEqual({ ...CLIENT_QUOTA_DEFAULTS, maxConcurrentBuilds: 2, overQuota: 'refuse' });
    expect(web!.policy.limits.maxContextBytes).toBe(GiB);
    expect(web!.policy.quota.maxConcurrentBuilds).toBe(CLIENT_QUOTA_DEFAULTS.maxConcurrentBuilds);
  });

  it.each([
    ['an unknown key of an entry', '  - { token: ci-token-0123456789abcdef, client: ci, limit: { memory: 1GiB } }', /entry 1 \(client ci\): unknown key "limit" \(known: token, client, admin, entitlements, limits, quota\)$/],
    ['an unknown limit', '  - { token: ci-token-0123456789abcdef, client: ci, limits: { memroy: 1GiB } }', /entry 1 \(client ci\): limits: unknown limit "memroy"/],
    ['an unknown quota', '  - { token: ci-token-0123456789abcdef, client: ci, quota: { max: 1 } }', /entry 1 \(client ci\): quota: unknown quota "max"/],
  ])('refuses %s, naming the file, the entry and the key', async (_what, line, message) => {
    const file = path.join(dir, 'bad-tokens.yaml');
    await writeFile(file, `tokens:\n${line}\n`);
    await expect(loadTokensFile(file)).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(new RegExp(`^tokens file ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ${message.source}`)) });
  });
});
