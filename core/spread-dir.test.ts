import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileAttrs, takesTopdir } from '../test/helpers/file-attrs.js';
import { hostCommands } from './host-commands.js';
import { makeSpreadDir } from './spread-dir.js';

const scratch: string[] = [];
function tempDir(under = os.tmpdir()): string {
  const d = mkdtempSync(path.join(under, 'spread-'));
  scratch.push(d);
  return d;
}
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
  hostCommands()?.close();
});

const topdir = takesTopdir();

describe('makeSpreadDir', () => {
  it.runIf(topdir)('creates the dir 0700 with ext4 TOPDIR set, and marks that it tried', async () => {
    const dir = path.join(tempDir(), 'a', 'snapshots');
    await makeSpreadDir(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(fileAttrs(dir)).toContain('T');
    expect(existsSync(`${dir}.spread`)).toBe(true);
    // Subdirectories do not inherit it: only `dir`'s own children are spread.
    mkdirSync(path.join(dir, 'child'));
    expect(fileAttrs(path.join(dir, 'child'))).not.toContain('T');
  });

  it.runIf(topdir)('a later call on a marked dir runs no command; a dir it recreates is set again', async () => {
    const dir = path.join(tempDir(), 'tmp');
    await makeSpreadDir(dir);
    expect(spawnSync('chattr', ['-T', dir]).status).toBe(0);
    await makeSpreadDir(dir);
    expect(fileAttrs(dir)).not.toContain('T');

    rmSync(dir, { recursive: true });
    await makeSpreadDir(dir);
    expect(fileAttrs(dir)).toContain('T');
  });

  it.runIf(topdir)('a dir made before this existed (no marker) gets the attribute once', async () => {
    const dir = path.join(tempDir(), 'cache-mounts');
    mkdirSync(dir, { mode: 0o700 });
    await makeSpreadDir(dir);
    expect(fileAttrs(dir)).toContain('T');
  });

  it('on a filesystem without the attribute (tmpfs) it still makes the dir and does not fail', async () => {
    const shm = '/dev/shm';
    expect(existsSync(shm), 'a tmpfs at /dev/shm').toBe(true);
    const dir = path.join(tempDir(shm), 'x', 'snapshots');
    await makeSpreadDir(dir, 0o750);
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o750 & ~process.umask());
    expect(fileAttrs(dir) ?? '').not.toContain('T');
    expect(existsSync(`${dir}.spread`)).toBe(true);
  });
});
