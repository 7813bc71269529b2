/**
 * The solver's scheduling with a fake executor and snapshotter
 * (test/helpers/solver-fakes.ts): no runc, no registry. Each step is a RUN on
 * scratch whose first argument names it; a step reads others through
 * read-only bind mounts, so a graph can fan in without a filesystem to copy.
 * The real content store and cache index sit in a temp dir, and each step's
 * rootfs is a real bind mount (root, as the whole suite needs).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import type { BuildEventBody } from '../../core/build.js';
import type { Digest } from '../../core/digest.js';
import { isCancelled } from '../../core/errors.js';
import { BUILD_LIMIT_DEFAULTS, type BuildLimits } from '../../core/limits.js';
import { mountsUnder } from '../../core/mounter.js';
import { solverFixture, type SolverFixture } from '../../test/helpers/solver-fakes.js';
import { Graph, type ExecDef } from '../graph/index.js';
import { ExecError, Solver, type SolveOptions } from './index.js';

/** A RUN named `name`: on `on`'s filesystem (else scratch), reading each of `reads` through a bind mount. */
function step(g: Graph, name: string, opts: { on?: Digest; reads?: readonly Digest[] } = {}): Digest {
  const reads = opts.reads ?? [];
  const first = opts.on === undefined ? 0 : 1;
  const def: ExecDef = {
    kind: 'exec',
    args: [name],
    env: [],
    cwd: '/',
    user: { user: '0' },
    network: 'default',
    hasRoot: opts.on !== undefined,
    mounts: reads.map((_, i) => ({ type: 'bind', target: `/in/${i}`, input: first + i, source: '/', readonly: true })),
  };
  return g.add(def, [...(opts.on === undefined ? [] : [opts.on]), ...reads], { name });
}

function solveOptions(events: BuildEventBody[], more: Partial<SolveOptions> = {}): SolveOptions {
  return { secrets: new Map(), noCache: false, noCacheStages: new Set(), emit: (e) => events.push(e), ...more };
}

/** The states each named step went through, from the vertex events. */
function states(g: Graph, events: readonly BuildEventBody[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const e of events) if (e.type === 'vertex') (out[g.meta.get(e.vertex)!.name] ??= []).push(e.state);
  return out;
}

/** What a build that ended leaves: no run in progress, no active snapshot, no mount. */
async function leftovers(f: SolverFixture) {
  return { running: f.executor.running, unended: f.executor.started.length - f.executor.ended.length, active: f.snapshotter.active(), mounts: await mountsUnder(f.dir) };
}
const NOTHING_LEFT = { running: 0, unended: 0, active: [], mounts: [] };

/** A graph of one step that runs until released, and a solver with slots to spare. */
function blockedStep(f: SolverFixture, name: string) {
  const g = new Graph();
  const s = step(g, name);
  f.executor.on(name, { kind: 'block' });
  return { g, s, solver: new Solver(f.deps(), { parallelism: 4 }) };
}

describe('Solver scheduling (fake executor and snapshotter)', () => {
  it('runs independent steps side by side, never more at once than its parallelism', async () => {
    await using f = await solverFixture();
    const g = new Graph();
    const leaves = ['a', 'b', 'c', 'd'].map((n) => step(g, n));
    const root = step(g, 'root', { reads: leaves });
    for (const n of ['a', 'b', 'c', 'd']) f.executor.on(n, { kind: 'block' });

    const solving = new Solver(f.deps(), { parallelism: 2 }).solve(g, root, solveOptions([]));
    await f.executor.until(() => f.executor.running === 2);
    // Had the queue let more through, the other two leaves (ready since the start) would be running by now.
    await sleep(300);
    expect(f.executor.running).toBe(2);
    for (const n of ['a', 'b', 'c', 'd']) f.executor.release(n);
    await solving;

    expect(f.executor.maxRunning).toBe(2);
    expect([...f.executor.started].sort()).toEqual(['a', 'b', 'c', 'd', 'root']);
    // The root read its inputs: it ran after every one of them.
    expect(f.executor.started.at(-1)).toBe('root');
  });

  it('runs a step that two builds reach at once only once, when they run under the same limits', async () => {
    await using f = await solverFixture();
    const { g, s, solver } = blockedStep(f, 'shared');
    const shared = vi.spyOn(solver, 'shared');

    const one = solver.solve(g, s, solveOptions([]));
    const two = solver.solve(g, s, solveOptions([], { limits: { ...BUILD_LIMIT_DEFAULTS } }));
    // Both builds have asked for the step (neither found it in the cache: it has not finished).
    await vi.waitFor(() => expect(shared).toHaveBeenCalledTimes(2));
    f.executor.release('shared');
    const [r1, r2] = await Promise.all([one, two]);

    expect(f.executor.started).toEqual(['shared']);
    expect(r2.get(s)).toBe(r1.get(s));
  });

  it('runs it again for a build under other limits (a tighter step timeout must not end the other build)', async () => {
    await using f = await solverFixture();
    const { g, s, solver } = blockedStep(f, 'limited');
    const tighter: BuildLimits = { ...BUILD_LIMIT_DEFAULTS, stepTimeoutMs: 60_000 };

    const one = solver.solve(g, s, solveOptions([]));
    const two = solver.solve(g, s, solveOptions([], { limits: tighter }));
    await vi.waitFor(() => expect(f.executor.started).toEqual(['limited', 'limited']), { timeout: 10_000 });
    f.executor.release('limited');
    const [r1, r2] = await Promise.all([one, two]);
    // The same step, so the same cache key, run once per set of limits.
    expect(r2.get(s)!.key).toBe(r1.get(s)!.key);
  });

  it('a failing step cancels the steps running beside it, and the failure is reported only once they unwound', async () => {
    await using f = await solverFixture();
    const g = new Graph();
    const root = step(g, 'root', { reads: [step(g, 'bad'), step(g, 'slow'), step(g, 'queued')] });
    f.executor
      .on('bad', { kind: 'fail', exitCode: 3, after: 'slow' })
      // Takes its time to stop once cancelled, as a kill and an unmount do.
      .on('slow', { kind: 'until-abort', unwindMs: 300 })
      .on('queued', { kind: 'until-abort', unwindMs: 300 });
    const events: BuildEventBody[] = [];

    const err = await new Solver(f.deps(), { parallelism: 2 }).solve(g, root, solveOptions(events)).catch((e: unknown) => e);

    // Checked at the moment the failure is reported: every step that started has ended.
    expect(await leftovers(f)).toEqual(NOTHING_LEFT);
    expect(err).toBeInstanceOf(ExecError);
    expect((err as ExecError).command).toBe('bad');
    const seen = states(g, events);
    expect(seen['bad']).toEqual(['started', 'errored']);
    expect(seen['slow']).toEqual(['started', 'cancelled']);
    expect(seen['root']).toBeUndefined();
  });

  it('an abort stops the steps waiting for a slot, and solve returns once the running ones unwound', async () => {
    await using f = await solverFixture();
    const g = new Graph();
    const root = step(g, 'root', { reads: [step(g, 'first'), step(g, 'second')] });
    f.executor.on('first', { kind: 'until-abort', unwindMs: 300 }).on('second', { kind: 'until-abort', unwindMs: 300 });
    const events: BuildEventBody[] = [];
    const abort = new AbortController();

    const solving = new Solver(f.deps(), { parallelism: 1 }).solve(g, root, solveOptions(events, { signal: abort.signal })).catch((e: unknown) => e);
    await f.executor.until(() => f.executor.running === 1);
    abort.abort();
    const err = await solving;

    expect(await leftovers(f)).toEqual(NOTHING_LEFT);
    expect(isCancelled(err)).toBe(true);
    // One slot: one step ran and was cancelled; the one waiting for the slot never started.
    expect(f.executor.started).toHaveLength(1);
    const ran = f.executor.started[0]!;
    const waited = ran === 'first' ? 'second' : 'first';
    const seen = states(g, events);
    expect(seen[ran]).toEqual(['started', 'cancelled']);
    expect(seen[waited]).toBeUndefined();
    expect(seen['root']).toBeUndefined();
  });

  it('a cache hit runs nothing below it, even what is not cached', async () => {
    await using f = await solverFixture();
    const g = new Graph();
    const base = step(g, 'base');
    const top = step(g, 'top', { on: base });
    f.executor.on('base', { kind: 'ok', writes: 'base' }).on('top', { kind: 'ok', writes: 'top' });

    // First build: both run; each wrote a file, so each added a layer.
    const first = f.deps('first');
    const built = await new Solver(first).solve(g, top, solveOptions([]));
    expect(f.executor.started).toEqual(['base', 'top']);
    const topResult = built.get(top)!;
    expect(topResult.layers).toHaveLength(2);

    // A cache that holds only the top step's record (its layers' blobs are in the store).
    const second = f.deps('second');
    await second.index.put(topResult.key, (await first.index.get(topResult.key))!);
    const events: BuildEventBody[] = [];
    const again = await new Solver(second).solve(g, top, solveOptions(events));

    expect(f.executor.started).toEqual(['base', 'top']);
    expect(again.get(top)).toMatchObject({ key: topResult.key, layers: topResult.layers, cached: true });
    expect(again.has(base)).toBe(false);
    expect(states(g, events)).toEqual({ top: ['cached'] });
  });
});
