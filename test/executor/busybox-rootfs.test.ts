import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeBusyboxRootfs } from '../helpers/busybox-rootfs.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'bl-bbroot-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every entry with type, mode, owner, mtime and link target, as find prints them. */
function listing(root: string): string {
  return execFileSync('find', ['.', '-printf', '%p %y %m %U:%G %T@ %l\n'], { cwd: root, encoding: 'utf8' }).split('\n').sort().join('\n');
}

it('makes the same tree twice, with the modes and owners tests rely on', async () => {
  await makeBusyboxRootfs(path.join(dir, 'a'));
  await makeBusyboxRootfs(path.join(dir, 'b'));
  const a = listing(path.join(dir, 'a'));
  expect(listing(path.join(dir, 'b'))).toBe(a);
  expect(a).toContain('./tmp d 1777 0:0 1704067200.0000000000 ');
  expect(a).toContain('./root d 700 0:0');
  expect(a).toContain('./home/app d 755 1000:1000');
  expect(a).toContain('./bin/sh l 777 0:0 1704067200.0000000000 busybox');
  expect(a).toContain('./usr/bin/env l 777 0:0 1704067200.0000000000 /bin/busybox');
});
