import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanAbs, isWithin, resolveInRoot, UnsafePathError } from './safe-path.js';

let tmp: string;
let root: string;

/*
 * root/
 *   a/b/file
 *   abs      -> /a            absolute: restarts at root
 *   rel      -> a/b           relative, inside
 *   escape   -> ../../../etc  relative, tries to climb out
 *   hostfile -> /etc/passwd   absolute to a host file
 *   a/up     -> ../..         climbs past root from inside
 *   a/b/back -> ../../rel     chains into another link
 *   loop1 -> loop2, loop2 -> loop1
 *   self     -> self
 *   dangling -> /nowhere/deep
 * outside/secret             a sibling of root, must never be reached
 */
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-safepath-'));
  root = path.join(tmp, 'root');
  await mkdir(path.join(root, 'a/b'), { recursive: true });
  await writeFile(path.join(root, 'a/b/file'), 'x');
  await mkdir(path.join(tmp, 'outside'));
  await writeFile(path.join(tmp, 'outside/secret'), 's');
  await symlink('/a', path.join(root, 'abs'));
  await symlink('a/b', path.join(root, 'rel'));
  await symlink('../../../etc', path.join(root, 'escape'));
  await symlink('/etc/passwd', path.join(root, 'hostfile'));
  await symlink('../..', path.join(root, 'a/up'));
  await symlink('../../rel', path.join(root, 'a/b/back'));
  await symlink('loop2', path.join(root, 'loop1'));
  await symlink('loop1', path.join(root, 'loop2'));
  await symlink('self', path.join(root, 'self'));
  await symlink('/nowhere/deep', path.join(root, 'dangling'));
  await symlink('../outside/secret', path.join(root, 'sibling'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const r = (p: string) => path.join(root, p);

describe('resolveInRoot', () => {
  it.each([
    ['a plain relative path', 'a/b/file', 'a/b/file'],
    ['an absolute path (from root)', '/a/b/file', 'a/b/file'],
    ['root itself', '/', ''],
    ['empty', '', ''],
    ['dots and doubled slashes', './a//./b/', 'a/b'],
    ['.. clamped at root', '../../../etc/passwd', 'etc/passwd'],
    ['.. in the middle', 'a/b/../../a/b/file', 'a/b/file'],
    ['an absolute symlink restarts at root', 'abs/b/file', 'a/b/file'],
    ['a relative symlink', 'rel/file', 'a/b/file'],
    ['a relative symlink that tries to escape is clamped', 'escape/passwd', 'etc/passwd'],
    ['a symlink to a host file stays inside', 'hostfile', 'etc/passwd'],
    ['.. through a symlink climbs from its target', 'a/up/a/b/file', 'a/b/file'],
    ['.. after a symlink uses the resolved parent', 'rel/../b/file', 'a/b/file'],
    ['a chain of symlinks', 'a/b/back/file', 'a/b/file'],
    ['a non-existing tail is appended', 'rel/new/dir/x', 'a/b/new/dir/x'],
    ['a dangling absolute link resolves inside', 'dangling/more', 'nowhere/deep/more'],
    ['a link to a sibling of root is clamped', 'sibling', 'outside/secret'],
  ])('%s: %s', async (_name, input, want) => {
    const got = await resolveInRoot(root, input);
    expect(got).toBe(r(want));
    expect(isWithin(root, got)).toBe(true);
  });

  it('does not follow the last component when followLast=false', async () => {
    expect(await resolveInRoot(root, 'abs', false)).toBe(r('abs'));
    expect(await resolveInRoot(root, 'hostfile', false)).toBe(r('hostfile'));
    // ...but still follows the ones before it.
    expect(await resolveInRoot(root, 'rel/back', false)).toBe(r('a/b/back'));
    expect(await resolveInRoot(root, 'loop1', false)).toBe(r('loop1'));
  });

  it.each([['loop1'], ['loop2/x'], ['self'], ['a/loop-via-root']])('fails on a symlink loop: %s', async (p) => {
    if (p === 'a/loop-via-root') await symlink('/a/loop-via-root', r(p)).catch(() => {});
    const err = await resolveInRoot(root, p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafePathError);
    expect((err as UnsafePathError).code).toBe('UNSAFE_PATH');
    expect((err as Error).message).toMatch(/too many levels of symbolic links/);
  });

  it('accepts a relative root', async () => {
    const rel = path.relative(process.cwd(), root);
    expect(await resolveInRoot(rel, 'abs/b')).toBe(r('a/b'));
  });

  it('never leaves root, for many generated paths', async () => {
    const parts = ['..', '.', 'a', 'b', 'abs', 'rel', 'escape', 'hostfile', 'up', 'back', 'sibling', 'dangling', 'x', '/'];
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 300; i++) {
      const n = 1 + (rand() % 6);
      const p = Array.from({ length: n }, () => parts[rand() % parts.length]).join('/');
      const got = await resolveInRoot(root, p);
      expect(isWithin(root, got), `${p} -> ${got}`).toBe(true);
      expect(got.startsWith(path.join(tmp, 'outside')), p).toBe(false);
    }
  });
});

describe('cleanAbs', () => {
  it.each([
    ['a/../b/', '/b'],
    ['../../x', '/x'],
    ['/', '/'],
    ['', '/'],
    ['./a/./b', '/a/b'],
    ['//a//b', '/a/b'],
  ])('%s -> %s', (input, want) => {
    expect(cleanAbs(input)).toBe(want);
  });
});

describe('isWithin', () => {
  it.each([
    ['/r', '/r', true],
    ['/r', '/r/a', true],
    ['/r', '/r/a/../b', true],
    ['/r', '/ra', false],
    ['/r', '/r/..', false],
    ['/r', '/', false],
    ['/r', '/r/..foo', true],
  ])('%s contains %s: %s', (rootDir, child, want) => {
    expect(isWithin(rootDir, child)).toBe(want);
  });
});
