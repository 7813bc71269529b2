import { execFile, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountAt, mountsUnder, unmountAt } from '../../core/mounter.js';
import { ownerTag } from '../../core/process-liveness.js';
import { TestProcs } from '../helpers/procs.js';
import { cgroupDirsOf } from '../helpers/steps.js';
import { Sandbox } from './harness.js';

const execFileP = promisify(execFile);
const procs = new TestProcs();

let sb: Sandbox;
beforeAll(async () => {
  sb = await Sandbox.create();
});
afterAll(async () => {
  await procs.killAll();
  await sb?.[Symbol.asyncDispose]();
});

async function expectClean(s: Sandbox): Promise<void> {
  expect(await s.containers()).toEqual([]);
  expect(await s.mounts()).toEqual([]);
  expect(await readdir(path.join(s.stateDir, 'bundles'))).toEqual([]);
}

describe('sandbox lifecycle (real runc)', () => {
  it('kills a step that runs past its timeout, and leaves nothing behind', async () => {
    const t0 = Date.now();
    const { result } = await sb.run('sleep 60 & sleep 60', {}, { limits: { stepTimeoutMs: 1000 } });
    expect(result.timedOut).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    expect(result.exitCode).toBe(137);
    expect(Date.now() - t0).toBeLessThan(5000);
    await expectClean(sb);
  });

  it('aborts within 2 s of the signal, throws CANCELLED, and leaves nothing behind', async () => {
    const ac = new AbortController();
    let abortedAt = 0;
    const started = new Promise<void>((resolve) => {
      void sb
        .run('echo ready; trap "" TERM; sleep 60', {}, {
          signal: ac.signal,
          onStdout: () => resolve(),
        })
        .then(
          () => expect.unreachable('run should have been cancelled'),
          (err: unknown) => {
            expect(err).toMatchObject({ code: 'CANCELLED' });
            done(Date.now() - abortedAt);
          },
        );
    });
    let done!: (ms: number) => void;
    const finished = new Promise<number>((r) => (done = r));
    await started;
    abortedAt = Date.now();
    ac.abort();
    expect(await finished).toBeLessThan(2000);
    await expectClean(sb);
  });

  it('refuses to start when the signal is already aborted', async () => {
    await expect(sb.run('true', {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'CANCELLED' });
  });

  it('stops a fork bomb at the pids limit, and the step still ends cleanly', async () => {
    const t0 = Date.now();
    const { result, stderr } = await sb.run(
      'i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done; echo finished',
      {},
      { limits: { pids: 32 } },
    );
    // busybox sh gives up on the first failed fork; the sleepers die with the namespace's init.
    expect(stderr).toMatch(/can't fork|Resource temporarily unavailable/);
    expect(result.exitCode).not.toBe(0);
    expect(result.timedOut).toBe(false);
    expect(Date.now() - t0).toBeLessThan(10_000);
    await expectClean(sb);
  });

  it('contains a real fork bomb: it ends by the timeout (or its shell gives up), and nothing is left', async () => {
    const t0 = Date.now();
    const { result, stdout } = await sb.run('b() { b | b & }; b; sleep 60; echo survived', {}, { limits: { pids: 64, stepTimeoutMs: 2000 } });
    // Which comes first depends on scheduling: the 2 s timeout, or pid 1 failing to fork `sleep`.
    expect(result.timedOut || result.exitCode !== 0).toBe(true);
    expect(stdout).not.toContain('survived');
    expect(Date.now() - t0).toBeLessThan(8000);
    await expectClean(sb);
  });

  it('reports an OOM kill', async () => {
    const { result } = await sb.run(
      `awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }'`,
      {},
      { limits: { memoryBytes: 32 * 1024 * 1024, stepTimeoutMs: 30_000 } },
    );
    expect(result.oomKilled).toBe(true);
    expect(result.exitCode).toBe(137);
    await expectClean(sb);
  });

  /** Leave a running container (sleep 600) and its mounted bundle behind, as a SIGKILLed worker would. */
  async function leaveContainer(id: string): Promise<void> {
    const bundle = path.join(sb.stateDir, 'bundles', id);
    await mkdir(path.join(bundle, 'rootfs'), { recursive: true });
    await mountAt({ type: 'bind', source: sb.rootfs, options: ['rbind'] }, path.join(bundle, 'rootfs'));
    await writeFile(
      path.join(bundle, 'config.json'),
      JSON.stringify({
        ociVersion: '1.0.2',
        process: { args: ['/bin/sleep', '600'], cwd: '/', user: { uid: 0, gid: 0 }, env: ['PATH=/bin'] },
        root: { path: 'rootfs' },
        mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
        linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }], cgroupsPath: `/buildlite/${id}` },
      }),
    );
    const runc = spawn('runc', ['--root', path.join(sb.stateDir, 'runc'), 'run', '--detach', '--bundle', bundle, id], { stdio: 'ignore' });
    await new Promise((r) => runc.on('exit', r));
  }

  it('sweep() removes containers and bundles a killed worker left', async () => {
    const id = 'bl-leftover';
    await leaveContainer(id);
    expect(await sb.containers()).toEqual([id]);

    const swept = await sb.executor.sweep();
    expect(swept.containers).toEqual([id]);
    expect(swept.bundles).toEqual([id]);
    await expectClean(sb);
    expect(cgroupDirsOf(id)).toEqual([]);
    // The rootfs the bundle had mounted is intact: the sweep never deletes through a mount.
    expect(await readFile(path.join(sb.rootfs, 'etc/passwd'), 'utf8')).toContain('app:x:1000');
    expect(await mountsUnder(sb.dir)).toEqual([]);
  });

  it("sweep() beside live users takes a dead owner's steps, a cgroup runc lost included, and never a live owner's", async () => {
    const gone = await procs.sleeper();
    const deadTag = ownerTag(gone.pid!);
    await procs.killAll();
    const dead = `bl-${deadTag}-0000aaaa`;
    const live = `bl-${ownerTag()}-0000bbbb`;
    const ownerless = 'bl-0123456789abcdef';
    for (const id of [dead, live, ownerless]) await leaveContainer(id);
    // A step whose runc died after making its cgroup and bundle, before saving its state.
    const lost = `bl-${deadTag}-0000cccc`;
    await mkdir(path.join(sb.stateDir, 'bundles', lost));
    const lostCgroup = `/sys/fs/cgroup/pids/buildlite/${lost}`;
    await mkdir(lostCgroup);
    const stray = await procs.sleeper();
    const strayExit = new Promise((r) => stray.once('exit', (_code, signal) => r(signal)));
    await writeFile(path.join(lostCgroup, 'cgroup.procs'), String(stray.pid));
    try {
      const swept = await sb.executor.sweep({ ownerless: false });
      expect(swept.containers).toEqual([dead]);
      expect(swept.cgroups).toEqual([lost]);
      expect([...swept.bundles].sort()).toEqual([dead, lost].sort());
      expect(await strayExit).toBe('SIGKILL');
      expect(cgroupDirsOf(lost)).toEqual([]);
      expect(cgroupDirsOf(dead)).toEqual([]);
      expect((await sb.containers()).sort()).toEqual([live, ownerless].sort());
    } finally {
      // Ours (this process lives): no sweep takes it, the test removes it.
      await execFileP('runc', ['--root', path.join(sb.stateDir, 'runc'), 'delete', '--force', live]).catch(() => undefined);
      await unmountAt(path.join(sb.stateDir, 'bundles', live, 'rootfs'));
      await rm(path.join(sb.stateDir, 'bundles', live), { recursive: true, force: true });
      await sb.executor.sweep();
    }
    await expectClean(sb);
  });

  it('measures the overhead of running `true`', async () => {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const { result } = await sb.run(['/bin/true']);
      times.push(performance.now() - t0);
      expect(result.exitCode).toBe(0);
    }
    times.sort((a, b) => a - b);
    const median = times[5]!;
    console.log(`run overhead of true: median ${median.toFixed(1)} ms, min ${times[0]!.toFixed(1)} ms, max ${times[9]!.toFixed(1)} ms`);
    expect(median).toBeLessThan(2000);
  });
});
