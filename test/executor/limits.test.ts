import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCgroups } from '../../builder/executor/index.js';
import { stateOf, until } from '../helpers/procs.js';
import { cgroupDirsOf, pidNamespaceOf, pidsInNamespace } from '../helpers/steps.js';
import { Sandbox } from './harness.js';

const sh = promisify(execFile);
const CG = '/sys/fs/cgroup';
const cgroups = detectCgroups();

/** The one container of the sandbox once it runs: its id and its init's host pid. */
async function runningStep(sb: Sandbox): Promise<{ id: string; pid: number }> {
  let found: { id: string; pid: number } | undefined;
  await until('the step is running', async () => {
    const { stdout } = await sh('runc', ['--root', path.join(sb.stateDir, 'runc'), 'list', '--format', 'json']);
    const list = (JSON.parse(stdout.trim() || 'null') as Array<{ id: string; pid: number; status: string }> | null) ?? [];
    const c = list.find((x) => x.status === 'running');
    if (c) found = { id: c.id, pid: c.pid };
    return c !== undefined;
  }, 20_000);
  return found!;
}

/** A file of the step's cgroup, read from the host: v1 hierarchies by controller, or the v2 tree. */
function cgroupFile(controller: string, id: string, v1: string, v2: string): Promise<string> {
  const file = cgroups.version === 1 ? path.join(CG, controller, 'buildlite', id, v1) : path.join(CG, 'buildlite', id, v2);
  return readFile(file, 'utf8').then((t) => t.trim());
}

async function expectClean(sb: Sandbox, id: string): Promise<void> {
  expect(await sb.containers()).toEqual([]);
  expect(await sb.mounts()).toEqual([]);
  expect(await readdir(path.join(sb.stateDir, 'bundles'))).toEqual([]);
  expect(cgroupDirsOf(id)).toEqual([]);
}

describe('step limits in the kernel (real runc, real cgroups)', () => {
  let sb: Sandbox;
  beforeAll(async () => {
    sb = await Sandbox.create();
  });
  afterAll(async () => {
    await sb?.[Symbol.asyncDispose]();
  });

  it('a CPU quota is in the step\'s cgroup while it runs (cfs quota of cpus periods), and none when cpus is 0', async () => {
    expect(cgroups.cpu).toBe(true);
    const run = sb.run('sleep 2', {}, { limits: { cpus: 0.5 } });
    const step = await runningStep(sb);
    const [quota, period] = cgroups.version === 1
      ? [await cgroupFile('cpu', step.id, 'cpu.cfs_quota_us', ''), await cgroupFile('cpu', step.id, 'cpu.cfs_period_us', '')]
      : (await cgroupFile('cpu', step.id, '', 'cpu.max')).split(' ');
    expect({ quota, period }).toEqual({ quota: '50000', period: '100000' });
    expect((await run).result.exitCode).toBe(0);
    await expectClean(sb, step.id);

    const none = sb.run('sleep 1', {}, { limits: { cpus: 0 } });
    const unbounded = await runningStep(sb);
    const q = cgroups.version === 1 ? await cgroupFile('cpu', unbounded.id, 'cpu.cfs_quota_us', '') : (await cgroupFile('cpu', unbounded.id, '', 'cpu.max')).split(' ')[0];
    expect(q).toBe(cgroups.version === 1 ? '-1' : 'max');
    await none;
  });

  it('memory is bounded with swap: the memory+swap limit is the memory limit, so a step cannot swap past it', async () => {
    expect(cgroups.swap).toBe(true);
    const limit = 256 * 1024 * 1024;
    const run = sb.run('sleep 2', {}, { limits: { memoryBytes: limit } });
    const step = await runningStep(sb);
    if (cgroups.version === 1) {
      expect(Number(await cgroupFile('memory', step.id, 'memory.limit_in_bytes', ''))).toBe(limit);
      expect(Number(await cgroupFile('memory', step.id, 'memory.memsw.limit_in_bytes', ''))).toBe(limit);
    } else {
      expect(Number(await cgroupFile('memory', step.id, '', 'memory.max'))).toBe(limit);
      expect(await cgroupFile('memory', step.id, '', 'memory.swap.max')).toBe('0');
    }
    await run;
  });

  it('a memory bomb is OOM-killed at the limit, and the result says which limit it ran under', async () => {
    const { result } = await sb.run(`awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }'`, {}, { limits: { memoryBytes: 64 << 20, stepTimeoutMs: 60_000 } });
    expect(result).toMatchObject({ oomKilled: true, timedOut: false, exitCode: 137 });
    expect(result.limits).toMatchObject({ memoryBytes: 64 << 20, stepTimeoutMs: 60_000 });
  });

  it('a fork loop never has more processes than the pids limit, and the result says a fork was refused', async () => {
    // The first second lets the test find the step; busybox sh then exits at its first refused fork.
    const run = sb.run('sleep 1; i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done; wait', {}, { limits: { pids: 20 } });
    const step = await runningStep(sb);
    let most = 0;
    const done = run.then((r) => r);
    let finished = false;
    void done.finally(() => (finished = true));
    while (!finished) {
      const n = Number(await cgroupFile('pids', step.id, 'pids.current', 'pids.current').catch(() => '0'));
      most = Math.max(most, n);
      await new Promise((r) => setTimeout(r, 20));
    }
    const { result, stderr } = await done;
    expect(stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(20);
    expect(result.pidsLimited).toBe(true);
    expect(result.exitCode).not.toBe(0);
    await expectClean(sb, step.id);

    const calm = await sb.run('sleep 0.1 & wait', {}, { limits: { pids: 20 } });
    expect(calm.result.pidsLimited).toBe(false);
  });

  it('a 10 s step timeout ends a step whose children stopped themselves, in under 15 s, leaving no process, mount, container or cgroup', async () => {
    const t0 = Date.now();
    // Each child stops itself (SIGSTOP), one after starting a grandchild; the shell waits for them forever.
    const run = sb.run('sh -c \'kill -STOP $$\' & sh -c \'sleep 1000 & kill -STOP $$\' & echo started; wait', {}, { limits: { stepTimeoutMs: 10_000 } });
    const step = await runningStep(sb);
    const ns = pidNamespaceOf(step.pid)!;
    await until('the children have stopped themselves', () => pidsInNamespace(ns).filter((p) => stateOf(p) === 'T').length === 2, 5000);
    const { result, stdout } = await run;
    const took = Date.now() - t0;
    expect(stdout).toContain('started');
    expect(result).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    expect(took).toBeGreaterThanOrEqual(10_000);
    expect(took).toBeLessThan(15_000);
    expect(pidsInNamespace(ns)).toEqual([]);
    await expectClean(sb, step.id);
  }, 30_000);
});

