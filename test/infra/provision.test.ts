/**
 * scripts/provision.sh, run for real. The cases that need a missing package use
 * a copy of the script with one package that does not exist added to its list,
 * run as an unprivileged user, so nothing can be installed by accident.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../scripts/provision.sh', import.meta.url));

function run(
  args: string[],
  opts: { file?: string; env?: NodeJS.ProcessEnv; asNobody?: boolean } = {},
): Promise<{ code: number; out: string; err: string }> {
  const cmd = opts.asNobody ? 'setpriv' : 'bash';
  const argv = opts.asNobody
    ? ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', opts.file ?? script, ...args]
    : [opts.file ?? script, ...args];
  return new Promise((resolve) => {
    execFile(cmd, argv, { env: opts.env ?? process.env }, (error, out, err) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out, err });
    });
  });
}

let tmp: string;
let withMissing: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'buildlite-provision-'));
  await chmod(tmp, 0o755); // readable by the unprivileged user
  const text = await readFile(script, 'utf8');
  const marker = 'test_pkgs=(\n';
  expect(text).toContain(marker);
  withMissing = path.join(tmp, 'provision.sh');
  await writeFile(withMissing, text.replace(marker, `${marker}  buildlite-no-such-package:buildlite-no-such-command\n`));
  await chmod(withMissing, 0o755);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;

describe('scripts/provision.sh', () => {
  it('does nothing and says nothing when everything is present', async () => {
    // npm test provisions before the tests run, so this machine has everything.
    const r = await run(['--test']);
    expect(r).toEqual({ code: 0, out: '', err: '' });
  });

  it('rejects an unknown option with exit 2', async () => {
    const r = await run(['--frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown option --frobnicate');
  });

  it.skipIf(!isRoot)('as a non-root user, prints what to install and the Debian command, and exits 1', async () => {
    const r = await run(['--test'], { file: withMissing, asNobody: true });
    expect(r.code).toBe(1);
    expect(r.err).toContain('not running as root');
    expect(r.err).toContain('apt-get update && apt-get install -y --no-install-recommends buildlite-no-such-package');
    // Only what is missing is listed.
    expect(r.err).not.toMatch(/\brunc\b/);
  });

  it('without --test, the test tools are not required', async () => {
    // The extra package sits in the test-tools list: without --test nothing is missing.
    const r = await run([], { file: withMissing, asNobody: isRoot });
    expect(r).toEqual({ code: 0, out: '', err: '' });
  });

  it('refuses a Node.js older than 20 and says what to install', async () => {
    const bin = path.join(tmp, 'oldnode');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(bin);
    await writeFile(path.join(bin, 'node'), '#!/bin/sh\ncase "$1" in -p) echo 18;; *) echo v18.19.0;; esac\n');
    await writeFile(path.join(bin, 'npm'), '#!/bin/sh\necho 9.2.0\n');
    await chmod(path.join(bin, 'node'), 0o755);
    await chmod(path.join(bin, 'npm'), 0o755);
    const r = await run([], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).toBe(1);
    expect(r.err).toContain('Node.js v18.19.0 is too old');
    expect(r.err).toContain('Install Node.js 20 or newer');
  });

  it.skipIf(!isRoot)('--rootless-user NAME gives a user without one a free 65536-id range in /etc/subuid and /etc/subgid, once', async () => {
    const name = `blprov${process.pid}`;
    const sh = (cmd: string, args: string[]) => new Promise<void>((resolve, reject) => execFile(cmd, args, (e) => (e ? reject(e) : resolve())));
    // No range of its own from useradd, whatever /etc/login.defs says.
    await sh('useradd', ['-M', '-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0', name]);
    try {
      const before = await readFile('/etc/subuid', 'utf8');
      expect(before).not.toContain(`${name}:`);
      const r = await run(['--rootless-user', name]);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`user ${name}: subordinate uids and gids (\\d+)-(\\d+)`));
      const uidLine = (await readFile('/etc/subuid', 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`))!;
      const gidLine = (await readFile('/etc/subgid', 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`))!;
      const [, start, count] = uidLine.split(':').map(Number);
      expect(count).toBe(65536);
      expect(gidLine).toBe(uidLine);
      // Above every range given before: no id shared with another user.
      for (const line of before.split('\n').filter((l) => l.includes(':'))) {
        const [, s0, c0] = line.split(':').map(Number);
        expect(start! >= s0! + c0! || start! + count! <= s0!).toBe(true);
      }
      // Kept when present: nothing added, nothing said.
      expect(await run(['--rootless-user', name])).toEqual({ code: 0, out: '', err: '' });
      expect((await readFile('/etc/subuid', 'utf8')).split(`${name}:`).length).toBe(2);
    } finally {
      await sh('userdel', [name]);
    }
    expect(await readFile('/etc/subuid', 'utf8')).not.toContain(`${name}:`);
  });

  it('--rootless-user names a user that must exist', async () => {
    expect(await run(['--rootless-user', 'buildlite-no-such-user'])).toMatchObject({ code: 1, err: expect.stringContaining('--rootless-user buildlite-no-such-user: no such user') });
    expect((await run(['--rootless-user'])).code).toBe(2);
  });

  describe('emulation: binfmt_misc registrations', () => {
    // A binfmt_misc of its own (one per user namespace, Linux 6.7+), so this machine's registrations are never touched.
    const inOwnBinfmt = (body: string) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        const script = ['set -e', 'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc', body].join('\n');
        execFile('unshare', ['--user', '--map-root-user', '--mount', 'bash', '-c', script, 'bash', script], (error, out, err) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: out + err });
        });
      });
    const ARM_MAGIC = String.raw`\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00`;
    const ARM_MASK = String.raw`\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`;

    it('registers each missing interpreter with the F flag, once', async () => {
      const r = await inOwnBinfmt(`bash ${script} --test; echo ---; cat /proc/sys/fs/binfmt_misc/qemu-aarch64; echo ---; bash ${script} --test; echo "second: $?"`);
      expect(r.code, r.out).toBe(0);
      const [first, entry, second] = r.out.split('---\n');
      expect(first).toMatch(/registered QEMU interpreters: aarch64 arm ppc64le s390x riscv64/);
      expect(entry).toMatch(/^enabled\ninterpreter \/usr\/libexec\/qemu-binfmt\/aarch64-binfmt-P\nflags: [A-Z]*F/);
      expect(entry).toContain('magic 7f454c460201010000000000000000000200b700');
      // Nothing left to do: silent.
      expect(second).toBe('second: 0\n');
    });

    it('leaves existing registrations alone: one of the same name, and one of another name for the same programs', async () => {
      const r = await inOwnBinfmt([
        // Someone's own aarch64 entry (no F flag) and an arm entry under another name.
        String.raw`printf '%s' ':qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00::/bin/false:' > /proc/sys/fs/binfmt_misc/register`,
        `printf '%s' ':my-arm:M::${ARM_MAGIC}:${ARM_MASK}:/bin/false:' > /proc/sys/fs/binfmt_misc/register`,
        'before=$(cat /proc/sys/fs/binfmt_misc/qemu-aarch64)',
        `bash ${script} --test`,
        'after=$(cat /proc/sys/fs/binfmt_misc/qemu-aarch64)',
        '[ "$before" = "$after" ] && echo "aarch64 untouched"',
        'ls /proc/sys/fs/binfmt_misc',
      ].join('\n'));
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('aarch64 untouched');
      expect(r.out).toMatch(/registered QEMU interpreters: ppc64le s390x riscv64/);
      expect(r.out).not.toMatch(/registered QEMU interpreters:.*\b(aarch64|arm)\b/);
      expect(r.out.split('\n')).not.toContain('qemu-arm');
    });
  });
});

