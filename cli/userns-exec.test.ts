import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkUserNamespaces, needsUserNamespace, unshareArgs } from './userns-exec.js';

describe('needsUserNamespace', () => {
  it.each([
    ['build', ['.'], {}, true],
    ['build', ['--server', 'h:1', '.'], {}, false],
    ['build', ['--server=h:1', '.'], {}, false],
    ['build', ['.'], { BUILDLITE_SERVER: 'h:1' }, false],
    ['build', ['--server', '', '.'], { BUILDLITE_SERVER: 'h:1' }, true],
    ['build', ['--check', '.'], {}, false],
    ['build', ['--', '--check'], {}, true],
    ['push', ['a', 'b'], {}, true],
    ['du', [], {}, true],
    ['du', ['--server', 'h:1'], {}, false],
    ['prune', ['--all'], {}, true],
    ['debug', ['why-miss', '--last'], {}, true],
    ['worker', ['--redis', 'redis://x'], {}, true],
    ['serve', ['--redis', 'redis://x'], {}, false],
    ['serve', ['--embedded-worker'], {}, true],
    ['graph', ['.'], {}, false],
    ['login', ['reg'], {}, false],
    ['ls', [], {}, false],
  ])('%s %j (env %j): %s', (cmd, args, env, want) => {
    expect(needsUserNamespace(cmd, args, env)).toBe(want);
  });
});

describe('unshareArgs', () => {
  it('maps 0 to the user and 1..65536 to the subordinate ranges, in a mount namespace of its own', () => {
    const args = unshareArgs({ start: 100000, count: 70000 }, { start: 200000, count: 65536 }, ['/bin/true', 'x']);
    expect(args).toEqual([
      '--user', '--map-root-user', '--map-users=100000,1,65536', '--map-groups=200000,1,65536',
      '--mount', '--propagation', 'private', '--', '/bin/true', 'x',
    ]);
  });
});

describe('checkUserNamespaces', () => {
  it.each([
    ['user/max_user_namespaces', '0', 'user.max_user_namespaces = 0'],
    ['kernel/unprivileged_userns_clone', '0', 'kernel.unprivileged_userns_clone = 0'],
    ['kernel/apparmor_restrict_unprivileged_userns', '1', 'kernel.apparmor_restrict_unprivileged_userns = 1'],
  ])('%s = %s is named, with the sysctl that lifts it', async (file, value, named) => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-sysctl-'));
    try {
      await mkdir(path.join(dir, path.dirname(file)), { recursive: true });
      await writeFile(path.join(dir, file), `${value}\n`);
      expect(() => checkUserNamespaces(dir)).toThrow(named);
      await writeFile(path.join(dir, file), value === '0' ? '15000\n' : '0\n');
      expect(() => checkUserNamespaces(dir)).not.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('this machine allows them', () => {
    expect(() => checkUserNamespaces()).not.toThrow();
  });
});

