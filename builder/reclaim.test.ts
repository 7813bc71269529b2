import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ownerTag } from '../core/process-liveness.js';
import { TestProcs } from '../test/helpers/procs.js';
import { claimRoot, rootParts, type ClaimOptions, type RootParts } from './reclaim.js';
import { OverlaySnapshotter } from './snapshot/index.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-reclaim-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});
const procs = new TestProcs();
afterEach(() => procs.killAll());

/** The parts of `root`, their snapshotter in `boot`. */
function parts(root: string, boot = 'boot-a'): RootParts {
  return { ...rootParts(root), snapshotter: new OverlaySnapshotter(path.join(root, 'snapshots'), { bootId: boot }) };
}

/** Claims the root as a command would and lets go of it; what the reclaim did. */
async function claim(root: string, p: RootParts, opts?: ClaimOptions) {
  const { use, report } = await claimRoot(root, p, opts);
  await use.release();
  return report;
}

/** A step's snapshot a process left behind when it ended without dropping it. */
async function leftover(p: RootParts, key: string): Promise<void> {
  await p.snapshotter.prepare(key, null);
}

describe('reclaim: the snapshot sweep runs when something may be left', () => {
  it('runs on a root with no sweep on record, then not again in the same boot with nobody dead', async () => {
    const root = path.join(tmp, 'quiet');
    expect((await claim(root, parts(root))).snapshotSweep).toBe(true);
    const p = parts(root);
    await leftover(p, 'left-by-a-clean-exit');
    const report = await claim(root, p);
    expect(report.snapshotSweep).toBe(false);
    expect(await p.snapshotter.stat('left-by-a-clean-exit')).toBeDefined();
    // du and prune sweep anyway.
    expect((await claim(root, p, { snapshotSweep: 'always' })).snapshots).toBe(1);
    expect(await p.snapshotter.stat('left-by-a-clean-exit')).toBeUndefined();
  });

  it('runs after a process died on the root, and the mark it left goes with that sweep', async () => {
    const root = path.join(tmp, 'death');
    await claim(root, parts(root));
    const p = parts(root);
    await leftover(p, 'left-by-a-killed-build');
    await mkdir(path.join(root, 'procs'), { recursive: true });
    await writeFile(path.join(root, 'procs', `${await procs.deadTag()}-0000`), '');
    const report = await claim(root, p);
    expect(report.snapshotSweep).toBe(true);
    expect(report.snapshots).toBe(1);
    expect(await readdir(path.join(root, 'sweep-due'))).toEqual([]);
    expect((await claim(root, p)).snapshotSweep).toBe(false);
  });

  it('a death noticed while another user is live stays due until a sole user sweeps', async () => {
    const root = path.join(tmp, 'shared');
    await claim(root, parts(root));
    const p = parts(root);
    await leftover(p, 'left-while-shared');
    const live = await procs.sleeper();
    await writeFile(path.join(root, 'procs', `${ownerTag(live.pid!)}-1111`), '');
    await writeFile(path.join(root, 'procs', `${await procs.deadTag()}-2222`), '');
    const shared = await claim(root, p);
    expect(shared.full).toBe(false);
    expect(await readdir(path.join(root, 'sweep-due'))).toHaveLength(1);
    await rm(path.join(root, 'procs', `${ownerTag(live.pid!)}-1111`));
    const alone = await claim(root, p);
    expect(alone.snapshotSweep).toBe(true);
    expect(await p.snapshotter.stat('left-while-shared')).toBeUndefined();
  });

  it('runs in a new boot: snapshots no sync covered may have lost files', async () => {
    const root = path.join(tmp, 'reboot');
    await claim(root, parts(root, 'boot-a'));
    expect((await claim(root, parts(root, 'boot-a'))).snapshotSweep).toBe(false);
    expect((await claim(root, parts(root, 'boot-b'))).snapshotSweep).toBe(true);
    expect((await claim(root, parts(root, 'boot-b'))).snapshotSweep).toBe(false);
  });
});
