import { lstat, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from '../../test/executor/harness.js';
import { RuncExecutor } from './index.js';

let sb: Sandbox;
beforeAll(async () => {
  sb = await Sandbox.create();
});
afterAll(async () => {
  await sb?.[Symbol.asyncDispose]();
});

describe('RuncExecutor: process', () => {
  it('streams stdout and stderr separately and reports the exit code', async () => {
    const { result, stdout, stderr } = await sb.run('echo out; echo err >&2; exit 7');
    expect(result.exitCode).toBe(7);
    expect(result.timedOut).toBe(false);
    expect(result.oomKilled).toBe(false);
    expect(result.signal).toBeUndefined();
    expect(stdout).toBe('out\n');
    expect(stderr).toBe('err\n');
  });

  it('runs exec form without a shell and returns 0', async () => {
    const { result, stdout } = await sb.run(['/bin/echo', 'a b', '$HOME']);
    expect(result.exitCode).toBe(0);
    expect(stdout).toBe('a b $HOME\n');
  });

  it('passes env (and a default PATH when none is set) and secret env', async () => {
    const { stdout } = await sb.run('echo "$FOO|$PATH|$TOKEN"', { env: ['FOO=bar baz'] }, { secretEnv: { TOKEN: 's3cr3t' } });
    expect(stdout).toBe('bar baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|s3cr3t\n');
  });

  it('creates a missing cwd owned by the user, and runs in it', async () => {
    const { result, stdout } = await sb.run('pwd; id -u', { cwd: '/work/deep/dir', user: 'app' });
    expect(result.exitCode).toBe(0);
    expect(stdout).toBe('/work/deep/dir\n1000\n');
    const st = await stat(path.join(sb.rootfs, 'work/deep/dir'));
    expect([st.uid, st.gid]).toEqual([1000, 1000]);
    expect(st.mode & 0o777).toBe(0o755);
  });

  it('reports a signal death as 128+N with the signal name', async () => {
    // pid 1 of a pid namespace ignores signals it has no handler for, so the step reports its child's fate.
    const { result } = await sb.run('sleep 5 & kill -TERM $!; wait $!; exit $?');
    expect(result.exitCode).toBe(143);
    expect(result.signal).toBe('SIGTERM');
  });
});

describe('RuncExecutor: USER', () => {
  it.each([
    // busybox id prints groups= only when getgroups() is non-empty; an explicit group drops the supplementary ones.
    ['', 'uid=0(root) gid=0(root)'],
    ['root', 'uid=0(root) gid=0(root)'],
    ['app', 'uid=1000(app) gid=1000(app) groups=50(staff)'],
    ['1000', 'uid=1000(app) gid=1000(app) groups=50(staff)'],
    ['app:nobody', 'uid=1000(app) gid=65534(nobody)'],
    ['1000:50', 'uid=1000(app) gid=50(staff)'],
    ['app:staff', 'uid=1000(app) gid=50(staff)'],
    ['nobody', 'uid=65534(nobody) gid=65534(nobody)'],
    ['4242', 'uid=4242 gid=0(root)'],
    ['4242:4343', 'uid=4242 gid=4343'],
  ])('USER %j → %s', async (user, expected) => {
    const { result, stdout } = await sb.run(['/bin/id'], { user });
    expect(result.exitCode).toBe(0);
    expect(stdout.trim()).toBe(expected);
  });

  it('holds exactly the supplementary groups from /etc/group (getgroups)', async () => {
    const { stdout } = await sb.run('grep -E "^(Uid|Gid|Groups):" /proc/self/status', { user: 'app' });
    expect(stdout).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(stdout).toMatch(/^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(stdout).toMatch(/^Groups:\s+50\s*$/m);
  });

  it('refuses an unknown user name before starting anything', async () => {
    await expect(sb.run('true', { user: 'ghost' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await sb.containers()).toEqual([]);
    expect(await sb.mounts()).toEqual([]);
  });
});

describe('RuncExecutor: network grant', () => {
  it('refuses network=host unless the operator allowed it, before any container starts', async () => {
    const before = await readdir(path.join(sb.stateDir, 'bundles')).catch(() => []);
    await expect(sb.run('true', {}, { network: 'host' })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await readdir(path.join(sb.stateDir, 'bundles')).catch(() => [])).toEqual(before);
    expect(await sb.containers()).toEqual([]);
  });

  it('gives the host network when allowed and asked for', async () => {
    const host = await Sandbox.create({ allowHostNetwork: true });
    try {
      const own = await host.run('cat /proc/net/dev | tail -n +3 | wc -l', {}, { network: 'host' });
      const hostIfaces = (await readFile('/proc/net/dev', 'utf8')).trim().split('\n').length - 2;
      expect(Number(own.stdout.trim())).toBe(hostIfaces);
      const none = await host.run('cat /proc/net/dev | tail -n +3 | wc -l', {}, { network: 'none' });
      expect(none.stdout.trim()).toBe('1');
    } finally {
      await host[Symbol.asyncDispose]();
    }
  });
});

describe('RuncExecutor: /etc files and mount stubs', () => {
  it('provides hosts, resolv.conf and hostname read-only and leaves no stub when the image had none', async () => {
    const etc = path.join(sb.rootfs, 'etc');
    const { rm } = await import('node:fs/promises');
    for (const f of ['hosts', 'resolv.conf', 'hostname']) await rm(path.join(etc, f));
    const secret = path.join(sb.dir, 'secret.txt');
    await writeFile(secret, 'hunter2');
    const etcBefore = await stat(etc);
    const { result, stdout } = await sb.run(
      'cat /etc/hostname; hostname; grep -c localhost /etc/hosts; cat /run/secrets/token; echo x >> /etc/hosts || echo ro',
      {},
      { hostname: 'step1', mounts: [{ type: 'bind', source: secret, target: '/run/secrets/token', options: ['rbind', 'ro'] }] },
    );
    expect(result.exitCode).toBe(0);
    expect(stdout).toBe('step1\nstep1\n2\nhunter2ro\n');
    for (const f of ['etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'run/secrets']) {
      await expect(lstat(path.join(sb.rootfs, f)), f).rejects.toThrow(/ENOENT/);
    }
    expect(Math.floor((await stat(etc)).mtimeMs)).toBe(Math.floor(etcBefore.mtimeMs));
    expect(await readdir(path.join(sb.rootfs, 'run'))).toEqual([]);
    // Restore for the other tests.
    for (const f of ['hosts', 'resolv.conf', 'hostname']) await writeFile(path.join(etc, f), '');
  });

  it('keeps files the step wrote next to a stub, and never touches an existing /etc/hosts', async () => {
    await writeFile(path.join(sb.rootfs, 'etc/hosts'), 'mine\n');
    const { result } = await sb.run('mkdir -p /opt/cache && echo data > /opt/cache/keep', {}, {
      mounts: [{ type: 'tmpfs', source: 'tmpfs', target: '/opt/cache/tmp', options: ['size=1m'] }],
    });
    expect(result.exitCode).toBe(0);
    expect(await readFile(path.join(sb.rootfs, 'etc/hosts'), 'utf8')).toBe('mine\n');
    expect(await readFile(path.join(sb.rootfs, 'opt/cache/keep'), 'utf8')).toBe('data\n');
    await expect(lstat(path.join(sb.rootfs, 'opt/cache/tmp'))).rejects.toThrow(/ENOENT/);
    await writeFile(path.join(sb.rootfs, 'etc/hosts'), '');
  });
});

describe('RuncExecutor: options', () => {
  it('checks options at construction', () => {
    expect(() => new RuncExecutor({ stateDir: 'relative' })).toThrow(/stateDir/);
    expect(() => new RuncExecutor({ stateDir: '/tmp/x', limits: { pids: -1 } })).toThrow(/limits\.pids/);
    expect(() => new RuncExecutor({ stateDir: '/tmp/x', limits: { memoryBytes: 1024 } })).toThrow(/limits\.memoryBytes: must be at least 4 MiB/);
    expect(() => new RuncExecutor({ stateDir: '/tmp/x', limits: { cpus: 0.001 } })).toThrow(/limits\.cpus/);
    expect(() => new RuncExecutor({ stateDir: '/tmp/x', runcRoot: 'rel' })).toThrow(/runcRoot/);
  });

  it('rejects relative cwd and mount targets with ..', async () => {
    await expect(sb.run('true', { cwd: 'rel' })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await expect(
      sb.run('true', {}, { mounts: [{ type: 'tmpfs', source: 'tmpfs', target: '/a/../../b', options: [] }] }),
    ).rejects.toMatchObject({ code: 'INVALID_OPTION' });
  });

  it('turns a runc setup failure into a SANDBOX error, and cleans up', async () => {
    await mkdir(path.join(sb.dir, 'not-a-file-dir'), { recursive: true });
    await expect(
      sb.run('true', {}, { mounts: [{ type: 'nosuchfs', source: 'x', target: '/mnt/x', options: [] }] }),
    ).rejects.toMatchObject({ code: 'SANDBOX' });
    expect(await sb.containers()).toEqual([]);
    expect(await sb.mounts()).toEqual([]);
    await expect(lstat(path.join(sb.rootfs, 'mnt'))).rejects.toThrow(/ENOENT/);
  });

  it('leaves no container, mount or bundle after runs', async () => {
    expect(await sb.containers()).toEqual([]);
    expect(await sb.mounts()).toEqual([]);
    expect(await readdir(path.join(sb.stateDir, 'bundles'))).toEqual([]);
    expect((await stat(sb.stateDir)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(sb.stateDir, 'runc'))).mode & 0o777).toBe(0o700);
  });
});
