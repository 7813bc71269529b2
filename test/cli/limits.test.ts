import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMIT_SPECS } from '../../core/limits.js';
import { detectCgroups } from '../../builder/executor/index.js';
import { mountsUnder } from '../../core/mounter.js';
import { spawnCli } from '../helpers/cli.js';
import { until } from '../helpers/procs.js';
import { containersIn } from '../helpers/steps.js';
import { sh, startCliFixture, type CliFixture } from './fixture.js';

const MEMORY_BOMB = `awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }'`;

/** `buildlite build` with limit flags, as an operator of an embedded build uses them. */
describe('buildlite build limit flags', () => {
  let f: CliFixture;
  beforeAll(async () => {
    f = await startCliFixture('limits');
  });
  afterAll(async () => {
    await f?.close();
  });

  it('--memory 256MiB: a memory bomb fails with the OOM message at its line, and --metadata-file names the limit', async () => {
    const ctx = await f.context('bomb', { Dockerfile: `FROM ${f.base}\nRUN ${MEMORY_BOMB}\n` });
    const meta = path.join(f.tmp, 'bomb.json');
    const r = await f.build(['--memory', '256MiB', '--progress', 'plain', '--metadata-file', meta, ctx]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERROR: RUN exceeded the memory limit of 256 MiB (OOM-killed)');
    expect(r.stderr).toContain('reason: limit memory = 256 MiB (memory of one RUN step (swap included))');
    expect(r.stderr).toMatch(/ 2 \| >>> RUN awk/);
    const m = JSON.parse(await readFile(meta, 'utf8')) as { error: Record<string, unknown> };
    expect(m.error).toEqual({ code: 'LIMIT_EXCEEDED', message: 'RUN exceeded the memory limit of 256 MiB (OOM-killed)', limit: 'memoryBytes', value: 256 * 1024 * 1024 });
  });

  it('--cpus and --pids reach the step\'s cgroup while it runs', async () => {
    const ctx = await f.context('cgroup', { Dockerfile: `FROM ${f.base}\nRUN sleep 3\n` });
    const root = path.join(f.tmp, 'cgroup-root');
    const build = spawnCli(['build', '--root', root, '--cpus', '0.5', '--pids', '64', '--progress', 'plain', ctx], root);
    try {
      let id = '';
      await until('the step runs', async () => {
        id = (await containersIn(root)).find((c) => c.status === 'running')?.id ?? '';
        return id !== '';
      }, 30_000);
      const v1 = detectCgroups().version === 1;
      const read = async (v1Path: string, v2Path: string) => (await readFile(v1 ? v1Path : v2Path, 'utf8')).trim();
      expect(await read(`/sys/fs/cgroup/cpu/buildlite/${id}/cpu.cfs_quota_us`, `/sys/fs/cgroup/buildlite/${id}/cpu.max`)).toBe(v1 ? '50000' : '50000 100000');
      expect(await read(`/sys/fs/cgroup/pids/buildlite/${id}/pids.max`, `/sys/fs/cgroup/buildlite/${id}/pids.max`)).toBe('64');
      const done = await new Promise<number | null>((r) => build.child.once('exit', r));
      expect(done).toBe(0);
    } finally {
      await build.stop('SIGKILL');
    }
  });

  it('--step-timeout 10s ends a step whose children stopped themselves; no process, mount or container is left', async () => {
    const ctx = await f.context('stopped', { Dockerfile: `FROM ${f.base}\nRUN sh -c 'sleep 1001 & kill -STOP $$' & sh -c 'kill -STOP $$' & wait\n` });
    const r = await f.build(['--step-timeout', '10s', '--progress', 'plain', ctx]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERROR: RUN exceeded the step timeout of 10s (killed with every process it started)');
    expect(await containersIn(f.root)).toEqual([]);
    expect(await mountsUnder(f.root)).toEqual([]);
    const { stdout } = await sh('ps', ['-eo', 'args']);
    expect(stdout.split('\n').filter((l) => l.trim() === 'sleep 1001')).toEqual([]);
  }, 120_000);

  it('with --server a limit flag is a usage error (the operator sets them); a bad value is one too', async () => {
    const ctx = await f.context('usage', { Dockerfile: `FROM ${f.base}\n` });
    const remote = await f.build(['--server', '127.0.0.1:9', '--token', 't', '--memory', '1GiB', '--step-timeout', '1m', ctx]);
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/^buildlite: --step-timeout, --memory: a build service's limits are its operator's/);
    const bad = await f.build(['--memory', 'lots', ctx]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^buildlite: --memory "lots": not a size/);
    const worker = await f.cli(['worker', '--redis', 'redis://127.0.0.1:9', '--pids', '0']);
    expect(worker.code).toBe(2);
    expect(worker.stderr).toMatch(/^buildlite: --pids "0": want a positive integer/);
    const serve = await f.cli(['serve', '--redis', 'redis://127.0.0.1:9', '--token', 'ci=0123456789abcdef', '--embedded-worker', '--step-timeout', 'soon']);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toMatch(/^buildlite: --step-timeout "soon": not a duration/);
  });

  it('help lists every limit flag once, for build, worker and serve', async () => {
    for (const cmd of ['build', 'worker', 'serve']) {
      const { stdout, code } = await f.cli(['help', cmd]);
      expect(code).toBe(0);
      for (const { key } of Object.values(LIMIT_SPECS)) {
        expect(stdout.split(`--${key} `).length - 1, `${cmd} --${key}`).toBe(1);
      }
    }
  });

  it('a context on stdin past --max-context-size is refused, and nothing of it stays', async () => {
    const ctx = await f.context('stdin', { Dockerfile: `FROM ${f.base}\nCOPY noise /noise\n` });
    await writeFile(path.join(ctx, 'noise'), randomBytes(2 * 1024 * 1024));
    const tar = await sh('tar', ['-C', ctx, '-c', '.'], { encoding: 'buffer', maxBuffer: 16 << 20 });
    const root = path.join(f.tmp, 'stdin-root');
    const r = await f.cli(['build', '--root', root, '--max-context-size', '1MiB', '-'], { input: tar.stdout });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: the context on stdin exceeded the context size limit of 1 MiB (as extracted)');
    expect((await readdir(path.join(root, 'tmp'))).filter((n) => n.startsWith('stdin-context-'))).toEqual([]);
  });
});
