import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CAPABILITIES } from '../../builder/executor/index.js';
import { compileStatic, Sandbox } from './harness.js';

/** Capability numbers from linux/capability.h, for the 14 we grant. */
const CAP_NUMBERS: Record<string, number> = {
  CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_FOWNER: 3, CAP_FSETID: 4, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7,
  CAP_SETPCAP: 8, CAP_NET_BIND_SERVICE: 10, CAP_NET_RAW: 13, CAP_SYS_CHROOT: 18, CAP_MKNOD: 27,
  CAP_AUDIT_WRITE: 29, CAP_SETFCAP: 31,
};

const PROBE = `
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
static void report(const char *name, long r) { printf("%s=%s\\n", name, r < 0 ? strerrorname_np(errno) : "OK"); }
int main(void) {
  report("add_key", syscall(SYS_add_key, "user", "k", "v", 1, -2));
  report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2, 0));
  report("io_uring_setup", syscall(SYS_io_uring_setup, 1, (void *)0));
  report("unshare_user", unshare(CLONE_NEWUSER));
  report("unshare_mount", unshare(CLONE_NEWNS));
  report("vsock", socket(40, SOCK_STREAM, 0));
  report("clone3", syscall(SYS_clone3, (void *)0, 0));
  report("userfaultfd", syscall(SYS_userfaultfd, 0));
  report("bpf", syscall(SYS_bpf, 0, (void *)0, 0));
  report("inet", socket(AF_INET, SOCK_STREAM, 0));
  return 0;
}
`;

let sb: Sandbox;
beforeAll(async () => {
  sb = await Sandbox.create();
});
afterAll(async () => {
  await sb?.[Symbol.asyncDispose]();
});

describe('sandbox isolation (real runc)', () => {
  it('sees only its own processes', async () => {
    const ls = await sb.run(['/bin/ls', '/proc']);
    // Only ls itself, as pid 1: no host process is visible.
    expect(ls.stdout.split('\n').filter((n) => /^\d+$/.test(n))).toEqual(['1']);
    const { stdout } = await sb.run('ps -o pid,comm; true'); // '; true' keeps sh from exec'ing ps
    const rows = stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
    expect(rows.map((r) => r[1])).toEqual(['sh', 'ps']);
    expect(rows[0]?.[0]).toBe('1');
  });

  it('has only a loopback interface, and it is up', async () => {
    const { stdout } = await sb.run('ip -o link | cut -d: -f2 | tr -d " "; ip -o link show lo; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "');
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('lo');
    expect(lines[1]).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    expect(lines.slice(2)).toEqual(['lo']);
  });

  it('cannot see files outside its rootfs', async () => {
    await writeFile(path.join(sb.dir, 'outside-marker-7f3a'), 'host file');
    const { stdout } = await sb.run('find / -xdev -name "outside-marker-7f3a" 2>/dev/null | wc -l; ls /; cat /proc/1/root/../outside-marker-7f3a 2>&1 || true');
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('0');
    expect(stdout).not.toContain('host file');
    expect(lines).toContain('bin');
    expect(lines).not.toContain('state');
  });

  it('has the 14 default capabilities as root, none inheritable or ambient, seccomp on, no_new_privs off', async () => {
    const { stdout } = await sb.run('grep -E "^(Cap|Seccomp|NoNewPrivs)" /proc/self/status');
    const want = DEFAULT_CAPABILITIES.reduce((m, c) => m | (1n << BigInt(CAP_NUMBERS[c]!)), 0n);
    const field = (name: string): bigint => BigInt(`0x${new RegExp(`^${name}:\\s+([0-9a-f]+)`, 'm').exec(stdout)![1]}`);
    expect(field('CapBnd')).toBe(want);
    expect(field('CapEff')).toBe(want);
    expect(field('CapPrm')).toBe(want);
    expect(field('CapInh')).toBe(0n);
    expect(field('CapAmb')).toBe(0n);
    expect(stdout).toMatch(/^Seccomp:\s+2$/m);
    expect(stdout).toMatch(/^NoNewPrivs:\s+0$/m);
  });

  it('sets no_new_privs when the operator asks', async () => {
    const { stdout } = await sb.run('grep NoNewPrivs /proc/self/status', {}, { noNewPrivileges: true });
    expect(stdout).toMatch(/NoNewPrivs:\s+1/);
  });

  it('cannot mount or create a user namespace', async () => {
    const { stdout } = await sb.run('mount -t tmpfs none /mnt 2>&1; echo "mount=$?"; unshare -U true 2>&1; echo "unshare=$?"; unshare -m true 2>&1; echo "unshare_m=$?"');
    expect(stdout).toMatch(/mount=[1-9]/);
    expect(stdout).toMatch(/unshare=[1-9]/);
    expect(stdout).toMatch(/unshare_m=[1-9]/);
  });

  it('denies keyctl, io_uring, user namespaces, vsock, bpf and userfaultfd by seccomp', async () => {
    const bin = path.join(sb.rootfs, 'bin', 'probe');
    const compiled = await compileStatic(PROBE, bin);
    if (!compiled) {
      // No static libc on this host: the busybox-level checks above still run.
      console.warn('gcc -static unavailable; syscall probe skipped');
      return;
    }
    const { stdout } = await sb.run(['/bin/probe']);
    const got = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
    expect(got).toEqual({
      add_key: 'EPERM',
      keyctl: 'EPERM',
      io_uring_setup: 'EPERM',
      unshare_user: 'EPERM',
      unshare_mount: 'EPERM',
      vsock: 'EPERM',
      clone3: 'ENOSYS',
      userfaultfd: 'EPERM',
      bpf: 'EPERM',
      inet: 'OK',
    });
  });

  it('enforces the device cgroup: mknod works, opening a disk does not', async () => {
    const { stdout } = await sb.run('mknod /tmp/disk b 8 0 && echo made; head -c1 /tmp/disk >/dev/null 2>&1; echo "read=$?"; rm -f /tmp/disk; head -c 4 /dev/zero | wc -c');
    expect(stdout).toBe('made\nread=1\n4\n');
  });

  it('masks and write-protects kernel paths', async () => {
    const { stdout } = await sb.run(
      // Masked files read as empty (a /dev/null bind), masked dirs as empty dirs; a path this kernel lacks counts as masked.
      'for p in /proc/kcore /proc/keys /proc/timer_list; do if [ -e $p ]; then wc -c < $p; else echo 0; fi; done; ls /sys/firmware /proc/acpi 2>/dev/null | grep -v : | grep -c . ; echo 1 > /proc/sys/kernel/panic 2>/dev/null; echo "sys=$?"; echo 1 > /proc/sysrq-trigger 2>/dev/null; echo "sysrq=$?"; touch /sys/x 2>/dev/null; echo "sysfs=$?"',
    );
    expect(stdout).toBe('0\n0\n0\n0\nsys=1\nsysrq=1\nsysfs=1\n');
  });

  it('uses the given hostname in its own UTS namespace', async () => {
    const { stdout } = await sb.run('hostname; hostname other 2>/dev/null; echo "set=$?"', {}, { hostname: 'builder-x' });
    expect(stdout).toBe('builder-x\nset=1\n');
  });

  it('has stdin closed and NOFILE raised', async () => {
    const { stdout } = await sb.run('cat; echo "cat=$?"; ulimit -n; ls /proc/self/fd | wc -l');
    const [cat, nofile, fds] = stdout.trim().split('\n');
    expect(cat).toBe('cat=0');
    expect(Number(nofile)).toBeGreaterThanOrEqual(1024);
    // 0,1,2 and the fd of the directory ls reads: nothing inherited from the worker.
    expect(Number(fds)).toBeLessThanOrEqual(4);
  });
});
