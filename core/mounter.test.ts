import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MountError, mountAt, mountsUnder, parseMountPoints, unmountAt } from './mounter.js';

const MOUNTINFO = [
  '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '30 22 0:25 / /tmp/x rw - tmpfs tmpfs rw',
  '31 30 0:26 / /tmp/x/a rw - tmpfs tmpfs rw',
  '32 31 0:27 / /tmp/x/a/deeper rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w',
  '33 22 0:28 / /tmp/xy rw - tmpfs tmpfs rw',
  '34 22 0:29 / /tmp/with\\040space/m rw - tmpfs tmpfs rw',
  '35 22 0:30 / /tmp/tab\\011and\\134slash rw - tmpfs tmpfs rw',
  '',
].join('\n');

describe('parseMountPoints', () => {
  it('lists the prefix and what is under it, deepest first, not its siblings', () => {
    expect(parseMountPoints(MOUNTINFO, '/tmp/x')).toEqual(['/tmp/x/a/deeper', '/tmp/x/a', '/tmp/x']);
  });

  it('treats a trailing slash like none', () => {
    expect(parseMountPoints(MOUNTINFO, '/tmp/x/')).toEqual(parseMountPoints(MOUNTINFO, '/tmp/x'));
  });

  it('decodes the kernel escapes before matching', () => {
    expect(parseMountPoints(MOUNTINFO, '/tmp/with space')).toEqual(['/tmp/with space/m']);
    expect(parseMountPoints(MOUNTINFO, '/tmp/tab\tand\\slash')).toEqual(['/tmp/tab\tand\\slash']);
  });

  it('/ matches everything', () => {
    expect(parseMountPoints(MOUNTINFO, '/')).toHaveLength(7);
  });

  it('returns nothing for an unknown prefix or empty input', () => {
    expect(parseMountPoints(MOUNTINFO, '/nope')).toEqual([]);
    expect(parseMountPoints('', '/tmp')).toEqual([]);
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('mountAt / unmountAt / mountsUnder (real tmpfs, needs root)', () => {
  let tmp: string;
  beforeAll(async () => {
    // A space in the path exercises the \040 escape on the real mount table.
    tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite mounter-'));
  });
  afterAll(async () => {
    // Also on failure: nothing stays mounted, nothing stays on disk.
    for (const p of await mountsUnder(tmp)) await unmountAt(p);
    await rm(tmp, { recursive: true, force: true });
  });

  it('mounts, lists and unmounts a tmpfs, nested ones deepest first', async () => {
    const outer = path.join(tmp, 'outer');
    const inner = path.join(outer, 'inner');
    await mkdir(outer);
    await mountAt({ type: 'tmpfs', source: 'tmpfs', options: ['size=1m', 'mode=0755'] }, outer);
    await mkdir(inner);
    await mountAt({ type: 'tmpfs', source: 'tmpfs', options: [] }, inner);

    await writeFile(path.join(inner, 'f'), 'on tmpfs');
    expect(await mountsUnder(tmp)).toEqual([inner, outer]);

    await unmountAt(inner);
    // The file lived on the inner tmpfs: gone with it.
    await expect(readFile(path.join(inner, 'f'))).rejects.toThrow(/ENOENT/);
    expect(await mountsUnder(tmp)).toEqual([outer]);

    await unmountAt(outer);
    expect(await mountsUnder(tmp)).toEqual([]);
  });

  it('unmounting what is not mounted counts as success', async () => {
    const dir = path.join(tmp, 'never');
    await mkdir(dir);
    await unmountAt(dir);
    await unmountAt(path.join(tmp, 'does-not-exist'));
  });

  it('a failing mount is a MountError with the command output', async () => {
    const err = await mountAt({ type: 'no-such-fs-type', source: 'x', options: [] }, path.join(tmp, 'missing')).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MountError);
    expect((err as MountError).code).toBe('SANDBOX');
    expect((err as Error).message).toContain('no-such-fs-type');
  });

  it('a busy mount is detached lazily instead of failing', async () => {
    const dir = path.join(tmp, 'busy');
    await mkdir(dir);
    await mountAt({ type: 'tmpfs', source: 'tmpfs', options: [] }, dir);
    const { open } = await import('node:fs/promises');
    const fh = await open(path.join(dir, 'held'), 'w');
    try {
      await unmountAt(dir);
      expect(await mountsUnder(dir)).toEqual([]);
    } finally {
      await fh.close();
    }
  });
});
