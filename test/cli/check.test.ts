import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent } from '../../core/build.js';
import { startCliFixture, type CliFixture } from './fixture.js';

/** Build checks as a user meets them: `build --check`, and the warnings of every build in each progress mode. */
describe('build checks from the CLI', () => {
  let f: CliFixture;
  // Four rules broken, on lines 1, 2, 4 and 5; line 2 is in a stage the build does not need (--check checks it anyway).
  const dockerfile = (base: string, directive = '') =>
    [
      `${directive}FROM ${base} AS Build`,
      'ENV DEBUG 1',
      `FROM ${base}`,
      'WORKDIR app',
      'CMD echo hello',
      '',
    ].join('\n');

  beforeAll(async () => {
    f = await startCliFixture('check');
  });
  afterAll(async () => {
    await f?.close();
  });

  it('--check prints each rule with its line and documentation, builds nothing and exits 0', async () => {
    const ctx = await f.context('warn', { Dockerfile: dockerfile(f.base) });
    const r = await f.build(['--check', '--insecure-registry', f.registry.host, ctx]);
    expect(r.code, r.stderr).toBe(0);
    const reported = [...r.stdout.matchAll(/^WARNING: (\w+) - (\S+)\n.*\nDockerfile:(\d+)$/gm)].map((m) => [m[1], Number(m[3])]);
    expect(reported).toEqual([
      ['StageNameCasing', 1],
      ['LegacyKeyValueFormat', 2],
      ['WorkdirRelativePath', 4],
      ['JSONArgsRecommended', 5],
    ]);
    expect(r.stdout).toContain('https://docs.docker.com/go/dockerfile/rule/json-args-recommended/');
    expect(r.stdout).toMatch(/^ +5 \| >>> CMD echo hello$/m);
    expect(r.stdout).toContain('Check complete, 4 warnings have been found!');
    // Nothing was built: no step line in the output.
    expect(r.stderr).not.toMatch(/#\d+ \[/);
  });

  it('with # check=error=true --check exits 1 after printing the warnings; skip= leaves rules out', async () => {
    const failing = await f.context('error', { Dockerfile: dockerfile(f.base, '# check=error=true\n') });
    const r = await f.build(['--check', '--insecure-registry', f.registry.host, failing]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Check complete, 4 warnings have been found!');
    expect(r.stderr).toContain('build checks failed (check=error=true): JSONArgsRecommended, LegacyKeyValueFormat, StageNameCasing, WorkdirRelativePath');
    const skipping = await f.context('skip', { Dockerfile: dockerfile(f.base, '# check=error=true;skip=all\n') });
    const ok = await f.build(['--check', '--insecure-registry', f.registry.host, skipping]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('Check complete, no warnings found.\n');
  });

  it('--check runs here when a build service is named (--server or BUILDLITE_SERVER): the same report, nothing dialled', async () => {
    const ctx = await f.context('served', { Dockerfile: dockerfile(f.base) });
    const local = await f.build(['--check', '--insecure-registry', f.registry.host, ctx]);
    // Port 9 of a loopback address nothing listens on: a dial would fail the command.
    const viaFlag = await f.build(['--check', '--server', '127.0.0.1:9', '--token', 't', '--insecure-registry', f.registry.host, ctx]);
    const viaEnv = await f.build(['--check', '--insecure-registry', f.registry.host, ctx], { env: { ...process.env, BUILDLITE_SERVER: '127.0.0.1:9', BUILDLITE_TOKEN: 't' } });
    expect(local.code, local.stderr).toBe(0);
    for (const r of [viaFlag, viaEnv]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(local.stdout);
      expect(r.stderr).not.toContain('cannot reach');
    }
  });

  it('--check resolves --build-context names as the build would', async () => {
    const ctx = await f.context('named', { Dockerfile: 'FROM base\nCMD echo hi\n' });
    const r = await f.build(['--check', '--progress', 'json', '--insecure-registry', f.registry.host, '--build-context', `base=docker-image://${f.base}`, ctx]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { rule?: string }).rule)).toEqual(['JSONArgsRecommended']);
  });

  it('--check --progress json prints one warning event per line', async () => {
    const ctx = await f.context('json', { Dockerfile: dockerfile(f.base) });
    const r = await f.build(['--check', '--progress', 'json', '--insecure-registry', f.registry.host, ctx]);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as BuildEvent);
    expect(events.map((e) => (e.type === 'warning' ? [e.rule, e.range?.startLine] : e.type))).toEqual([
      ['StageNameCasing', 1],
      ['WorkdirRelativePath', 4],
      ['JSONArgsRecommended', 5],
      ['LegacyKeyValueFormat', 2],
    ]);
  });

  it('a build reports its checks as warning events in json and plain progress, and error=true fails it before any step', async () => {
    const ctx = await f.context('build', { Dockerfile: dockerfile(f.base) });
    const json = await f.build(['--progress', 'json', ctx]);
    expect(json.code, json.stderr).toBe(0);
    const warnings = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as BuildEvent).filter((e) => e.type === 'warning');
    // A build checks the stages it builds: the first stage is not one of them, but its name is checked with the file.
    expect(warnings.map((w) => w.type === 'warning' && [w.rule, w.range?.startLine, w.url !== undefined])).toEqual([
      ['StageNameCasing', 1, true],
      ['WorkdirRelativePath', 4, true],
      ['JSONArgsRecommended', 5, true],
    ]);
    const plain = await f.build(['--progress', 'plain', ctx]);
    expect(plain.stderr).toMatch(/^WARNING: JSONArgsRecommended: CMD in shell form .* \(Dockerfile:5\)$/m);

    const failing = await f.context('build-error', { Dockerfile: dockerfile(f.base, '# check=error=true\n') });
    const r = await f.build(['--progress', 'plain', failing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^WARNING: StageNameCasing: /m);
    expect(r.stderr).toContain('build checks failed (check=error=true)');
    expect(r.stderr).not.toMatch(/#\d+ \[stage-1 \d\/\d\] WORKDIR/);
  });
});
