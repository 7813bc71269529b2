import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ownerTag } from '../core/process-liveness.js';
import { Freezer } from '../test/helpers/freezer.js';
import { TestProcs } from '../test/helpers/procs.js';
import { registerRootUse } from './root-users.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-root-users-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const procs = new TestProcs();
afterEach(() => procs.killAll());

async function sleeper(): Promise<{ child: ChildProcess; tag: string }> {
  const child = await procs.sleeper();
  return { child, tag: ownerTag(child.pid!) };
}

/** A state root whose procs/ already lists these users. */
async function rootWith(name: string, users: string[]): Promise<string> {
  const root = path.join(tmp, name);
  await mkdir(path.join(root, 'procs'), { recursive: true });
  for (const u of users) await writeFile(path.join(root, 'procs', u), '');
  return root;
}

describe('registerRootUse: who counts as a live user of a state root', () => {
  it('a live process counts; two uses in one process count each other; release removes the entry', async () => {
    const { tag } = await sleeper();
    const root = await rootWith('live', [`${tag}-aaaa`]);
    const a = await registerRootUse(root);
    expect(a.others).toBe(1);
    const b = await registerRootUse(root);
    expect(b.others).toBe(2);
    await b.release();
    await a.release();
    expect(await readdir(path.join(root, 'procs'))).toEqual([`${tag}-aaaa`]);
  });

  it('a recycled pid (another start time), a dead process and a malformed entry do not count and are removed', async () => {
    const [pid, start] = ownerTag().split('-');
    const root = await rootWith('stale', [`${pid}-${Number(start) + 7}-bbbb`, await procs.deadTag(), 'junk']);
    await using use = await registerRootUse(root);
    expect(use.others).toBe(0);
    expect(use.waitedFor).toBe(0);
    expect(await readdir(path.join(root, 'procs'))).toHaveLength(1);
  });

  it('tells beforeForget once, while the dead users are still registered, and not when nobody is dead', async () => {
    const [a, b] = [await procs.deadTag(), await procs.deadTag()];
    const root = await rootWith('forget', [`${a}-eeee`, `${b}-ffff`]);
    const told: Array<{ why: string; registered: string[] }> = [];
    const beforeForget = async (why: string) => {
      told.push({ why, registered: (await readdir(path.join(root, 'procs'))).sort() });
    };
    const use = await registerRootUse(root, { beforeForget });
    expect(told).toHaveLength(1);
    expect(told[0]!.why).toMatch(/^user gone: /);
    expect(told[0]!.registered).toEqual(expect.arrayContaining([`${a}-eeee`, `${b}-ffff`]));
    await use.release();
    await using again = await registerRootUse(root, { beforeForget });
    expect(again.others).toBe(0);
    expect(told).toHaveLength(1);
  });

  it('a zombie does not count', async () => {
    const zpid = await procs.zombie();
    const root = await rootWith('zombie', [`${ownerTag(zpid)}-cccc`]);
    await using use = await registerRootUse(root);
    expect(use.others).toBe(0);
  });

  /** A root used by a process that was sent SIGKILL while frozen: it stays in /proc, dying, until thawed. */
  async function rootWithDyingUser(freezer: Freezer, name: string): Promise<string> {
    const { child, tag } = await sleeper();
    await freezer.add(child.pid!);
    await freezer.freeze();
    child.kill('SIGKILL');
    return rootWith(name, [`${tag}-dddd`]);
  }

  it('a user with SIGKILL pending is waited for, then does not count', async () => {
    await using freezer = await Freezer.create();
    const root = await rootWithDyingUser(freezer, 'dying');
    let settled = false;
    const registering = registerRootUse(root, { dyingWaitMs: 60_000 }).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    // Still frozen: registration waits for it rather than counting it or sweeping under it.
    expect(settled).toBe(false);
    await freezer.thaw();
    await using use = await registering;
    expect(use.others).toBe(0);
    expect(use.waitedFor).toBe(1);
  });

  it('a user still dying after the bound does not count either', async () => {
    await using freezer = await Freezer.create();
    const root = await rootWithDyingUser(freezer, 'stuck');
    await using use = await registerRootUse(root, { dyingWaitMs: 200 });
    expect(use.others).toBe(0);
    expect(use.waitedFor).toBe(1);
    expect(await readdir(path.join(root, 'procs'))).toHaveLength(1);
  });
});
