import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from '../../core/mounter.js';
import { spawnCli, type Proc } from '../helpers/cli.js';
import { until } from '../helpers/procs.js';
import { cgroupDirsOf, childrenOf, cleanupRoots, containersIn, pidNamespaceOf, pidsInNamespace, type RuncContainer } from '../helpers/steps.js';
import { startCliFixture, type CliFixture } from './fixture.js';

/**
 * A step must not outlive the `buildlite build` that started it, and what a
 * killed build leaves is reclaimed by the next command on its root (du,
 * prune), never touching the steps of another build that shares the root.
 */

/** A RUN that never ends by itself: a background process, a stopped one, and a loop writing a marker file. */
function endlessRun(marker: string): string {
  return `RUN echo ${marker}; sleep 1000 & (sleep 1001 & kill -STOP $!); i=0; while true; do echo $i > /tick; i=$((i+1)); sleep 0.1; done`;
}

interface RunningStep {
  readonly build: Proc;
  readonly container: RuncContainer;
  /** The step's pid namespace: every process of the step is in it. */
  readonly ns: string;
}

let fx: CliFixture;
const builds: Proc[] = [];
const roots: string[] = [];

beforeAll(async () => {
  fx = await startCliFixture('orphans');
});
afterEach(async () => {
  await Promise.all(builds.splice(0).map((b) => b.stop('SIGKILL')));
  await cleanupRoots(roots.splice(0));
});
afterAll(async () => {
  await fx?.close();
});

/** Starts a build whose RUN runs until killed, and waits until its step runs. */
async function startEndlessBuild(root: string, name: string): Promise<RunningStep> {
  const marker = `${name}-started-${Math.random().toString(36).slice(2)}`;
  const ctx = await fx.context(name, { Dockerfile: `FROM ${fx.base}\n${endlessRun(marker)}\n` });
  const before = new Set((await containersIn(root)).map((c) => c.id));
  const build = spawnCli(['build', '--root', root, '--progress', 'plain', ctx], root);
  builds.push(build);
  await build.waitFor(new RegExp(marker + '\\n'));
  const container = (await containersIn(root)).find((c) => !before.has(c.id) && c.status === 'running');
  expect(container, 'the step runs in a container').toBeDefined();
  const ns = pidNamespaceOf(container!.pid)!;
  // sh, sleep 1000, the stopped sleep 1001 and the loop's sleep: all in the step's namespace.
  await until('the step has started its processes', () => pidsInNamespace(ns).length >= 3, 20_000);
  return { build, container: container!, ns };
}

/** SIGKILL of the CLI and of the reaper it started: what a kill of every process of the job (its cgroup) does. */
async function killWithReaper(build: Proc): Promise<void> {
  const reapers = childrenOf(build.child.pid!, 'buildlite-reaper');
  expect(reapers, 'the build started a reaper').toHaveLength(1);
  process.kill(reapers[0]!, 'SIGKILL');
  await build.stop('SIGKILL');
}

async function expectNothingLeft(root: string, ids: readonly string[]): Promise<void> {
  expect(await containersIn(root)).toEqual([]);
  expect(await mountsUnder(root)).toEqual([]);
  for (const id of ids) expect(cgroupDirsOf(id)).toEqual([]);
}

describe('steps of a killed CLI', () => {
  it('SIGKILL of `buildlite build` mid-RUN: the step is gone within 2 s; `du` then leaves no container, mount or cgroup', async () => {
    const root = path.join(fx.tmp, 'killed');
    roots.push(root);
    const step = await startEndlessBuild(root, 'killed');
    expect(cgroupDirsOf(step.container.id)).not.toEqual([]);

    const t0 = performance.now();
    step.build.child.kill('SIGKILL');
    await until('no process of the step remains', () => pidsInNamespace(step.ns).length === 0, 2000);
    console.log(`step processes gone ${(performance.now() - t0).toFixed(0)} ms after SIGKILL of the CLI`);

    const du = await fx.cli(['du', '--root', root]);
    expect(du.code, du.stderr).toBe(0);
    await expectNothingLeft(root, [step.container.id]);
  });

  it.each([
    ['du', []],
    ['prune', ['--force']],
  ])('with its reaper killed too, the step keeps running until `%s` on the root stops it and reclaims everything', async (cmd, extra) => {
    const root = path.join(fx.tmp, `reaperless-${cmd}`);
    roots.push(root);
    const step = await startEndlessBuild(root, `reaperless-${cmd}`);
    await killWithReaper(step.build);
    // runc run died with the CLI (parent-death signal); the container did not: it is its own session and pid namespace.
    await new Promise((r) => setTimeout(r, 500));
    expect(pidsInNamespace(step.ns).length).toBeGreaterThanOrEqual(3);

    const r = await fx.cli([cmd, '--root', root, ...extra]);
    expect(r.code, r.stderr).toBe(0);
    expect(pidsInNamespace(step.ns)).toEqual([]);
    await expectNothingLeft(root, [step.container.id]);
  });

  it("a command on a root that a live build shares stops only the dead build's step; the live build completes", async () => {
    const root = path.join(fx.tmp, 'shared');
    roots.push(root);
    const ctx = await fx.context('shared-live', { Dockerfile: `FROM ${fx.base}\nRUN echo live-started-$((1+${Date.now()})); sleep 10; echo live-done\n` });
    const live = spawnCli(['build', '--root', root, '--progress', 'plain', ctx], root);
    builds.push(live);
    // The step's own output (the command line, printed first, holds no digits after the dash).
    await live.waitFor(/live-started-\d+\n/);
    const [liveContainer] = await containersIn(root);
    expect(liveContainer).toBeDefined();
    const exited = new Promise<number | null>((r) => live.child.once('exit', (code) => r(code)));

    const dead = await startEndlessBuild(root, 'shared-dead');
    await killWithReaper(dead.build);
    const du = await fx.cli(['du', '--root', root]);
    expect(du.code, du.stderr).toBe(0);
    expect(pidsInNamespace(dead.ns)).toEqual([]);
    expect((await containersIn(root)).map((c) => [c.id, c.status])).toEqual([[liveContainer!.id, 'running']]);

    expect(await exited).toBe(0);
    expect(live.output()).toContain('live-done');
    // The dead build's mounts waited for a sole user: the next command reclaims them.
    expect((await fx.cli(['du', '--root', root])).code).toBe(0);
    await expectNothingLeft(root, [liveContainer!.id, dead.container.id]);
  });
});
