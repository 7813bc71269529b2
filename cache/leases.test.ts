import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../core/digest.js';
import { LeaseManager, snapshotResource } from './index.js';

describe('LeaseManager', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'buildlite-leases-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('protects what a lease names until it is released', async () => {
    const leases = new LeaseManager(join(dir, 'a'));
    const blob = sha256('layer');
    const lease = await leases.acquire('build-1', [blob], 60_000);
    expect(await leases.protectedResources()).toEqual(new Set([blob]));
    await lease.add([snapshotResource('snap-1')]);
    expect(await leases.protectedResources()).toEqual(new Set([blob, 'snapshot:snap-1']));
    await lease.release();
    await lease.release();
    expect(await leases.protectedResources()).toEqual(new Set());
    await expect(lease.add(['x'])).rejects.toMatchObject({ code: 'STORE' });
  });

  it('an add of what the lease holds already writes nothing, and fails as the write that holds it did', async () => {
    const root = join(dir, 'd');
    const leases = new LeaseManager(root);
    await using lease = await leases.acquire('build-2', ['a', 'b'], 60_000);
    const file = join(root, (await readdir(root))[0]!);
    const before = await stat(file);
    await lease.add(['b', 'a']);
    expect((await stat(file)).ino).toBe(before.ino);
    await lease.add(['a', 'c']);
    expect((await stat(file)).ino).not.toBe(before.ino);
    expect(await leases.protectedResources()).toEqual(new Set(['a', 'b', 'c']));

    // A write that fails (a file where its directory was): an add of the same resources reports that failure, not success.
    await rm(root, { recursive: true, force: true });
    await writeFile(root, 'not a directory');
    const failed = lease.add(['d']);
    await expect(failed).rejects.toThrow();
    await expect(lease.add(['d'])).rejects.toThrow();
    await rm(root);
  });

  it('is seen by another manager on the same directory (another process)', async () => {
    const a = new LeaseManager(join(dir, 'b'));
    const b = new LeaseManager(join(dir, 'b'));
    await using _lease = await a.acquire('../../evil id', ['r1'], 60_000);
    expect((await b.active()).map((l) => l.id)).toEqual(['../../evil id']);
    // Ids are hashed into file names, never used as paths.
    expect((await readdir(join(dir, 'b')))[0]).toMatch(/^[a-f0-9]{64}\.json$/);
  });

  it('ignores expired leases, sweeps them, and extend keeps a lease alive', async () => {
    let now = 1_000_000;
    const leases = new LeaseManager(join(dir, 'c'), () => now);
    await leases.acquire('short', ['s'], 1000);
    const long = await leases.acquire('long', ['l'], 1000);
    now += 500;
    await long.extend(5000);
    now += 600;
    expect(await leases.protectedResources()).toEqual(new Set(['l']));
    expect(await leases.sweep()).toBe(1);
    expect((await leases.active()).map((l) => l.id)).toEqual(['long']);
    await expect(leases.acquire('bad', [], 0)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
