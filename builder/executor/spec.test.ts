import { describe, expect, it } from 'vitest';
import { seccompProfile } from './seccomp.js';
import { buildSpec, DEFAULT_CAPABILITIES, STEP_LIMIT_DEFAULTS, type SpecInput } from './spec.js';

const base: SpecInput = {
  args: ['/bin/sh', '-c', 'true'],
  env: ['A=1'],
  cwd: '/',
  user: { uid: 1000, gid: 1000, additionalGids: [50] },
  hostname: 'h',
  network: 'none',
  limits: STEP_LIMIT_DEFAULTS,
  cgroups: { version: 1, memory: true, swap: true, hostSwap: true, cpu: true, pids: true },
  etcFiles: { hosts: '/b/hosts', resolvConf: '/b/resolv.conf', hostname: '/b/hostname' },
  mounts: [{ type: 'bind', source: '/host/secret', target: '/run/secrets/s', options: ['ro'] }],
  cgroupsPath: '/buildlite/x',
  loopback: { sh: '/bin/sh', nsenter: '/usr/bin/nsenter', ip: ['/usr/sbin/ip'] },
};

describe('buildSpec', () => {
  it('rootless: no cgroup path (runc may make none), sysfs of its own netns, the host /sys bound read-only on the host network', () => {
    const { cgroupsPath: _, ...noCgroup } = base;
    const own = buildSpec({ ...noCgroup, rootless: true });
    expect(own.linux).not.toHaveProperty('cgroupsPath');
    expect(own.mounts.find((m) => m.destination === '/sys')).toEqual({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
    const host = buildSpec({ ...noCgroup, rootless: true, network: 'host' });
    expect(host.mounts.find((m) => m.destination === '/sys')).toEqual({ destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
    // Everything else of the sandbox is the same as root's.
    expect(own.process).toEqual(buildSpec(base).process);
    expect(own.linux.seccomp).toEqual(buildSpec(base).linux.seccomp);
    expect(own.linux.maskedPaths).toEqual(buildSpec(base).linux.maskedPaths);
    expect(buildSpec(base).linux['cgroupsPath']).toBe('/buildlite/x');
    // Without a pids cgroup the ceiling on processes is the step's RLIMIT_NPROC; root's steps need none (root ignores it).
    const noPids = buildSpec({ ...noCgroup, rootless: true, cgroups: { ...base.cgroups, pids: false } }).process['rlimits'];
    expect(noPids).toContainEqual({ type: 'RLIMIT_NPROC', hard: 4096, soft: 4096 });
    expect(JSON.stringify(buildSpec({ ...base, cgroups: { ...base.cgroups, pids: false } }).process['rlimits'])).not.toContain('NPROC');
  });

  it('has its own pid, ipc, uts, mount and network namespaces for network none, and a loopback hook when asked', () => {
    const spec = buildSpec(base);
    expect((spec.linux.namespaces as Array<{ type: string }>).map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(spec.hooks?.createRuntime?.[0]?.args.slice(-4)).toEqual(['link', 'set', 'lo', 'up']);
  });

  it('runs no hook for network none when the runtime raises lo itself (runc; test/executor checks lo is up)', () => {
    const { loopback: _, ...noHook } = base;
    const spec = buildSpec(noHook);
    expect((spec.linux.namespaces as Array<{ type: string }>).map((n) => n.type)).toContain('network');
    expect(spec.hooks).toBeUndefined();
  });

  it('shares only the host network for network host, with no hook', () => {
    const spec = buildSpec({ ...base, network: 'host' });
    expect((spec.linux.namespaces as Array<{ type: string }>).map((n) => n.type)).not.toContain('network');
    expect(spec.hooks).toBeUndefined();
  });

  it('grants the 14 capabilities with empty inheritable and ambient sets', () => {
    const caps = buildSpec(base).process.capabilities as Record<string, string[]>;
    expect(caps.bounding).toHaveLength(14);
    expect(caps.bounding).toEqual([...DEFAULT_CAPABILITIES]);
    expect(caps.effective).toEqual(caps.bounding);
    expect(caps.permitted).toEqual(caps.bounding);
    expect(caps.inheritable).toEqual([]);
    expect(caps.ambient).toEqual([]);
  });

  it('adds a default PATH only when the env has none, and keeps user, cwd, limits', () => {
    const spec = buildSpec(base);
    expect(spec.process.env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=1']);
    expect(buildSpec({ ...base, env: ['PATH=/x'] }).process.env).toEqual(['PATH=/x']);
    expect(spec.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [50] });
    expect(spec.process.noNewPrivileges).toBe(false);
    expect(spec.process.terminal).toBe(false);
    const res = spec.linux.resources as { pids: { limit: number }; devices: Array<{ allow: boolean }> };
    expect(res.pids.limit).toBe(STEP_LIMIT_DEFAULTS.pids);
    expect(res.devices[0]).toEqual({ allow: false, access: 'rwm' });
  });

  it('mounts /etc files read-only from the bundle and extra mounts last', () => {
    const mounts = buildSpec(base).mounts;
    const dests = mounts.map((m) => m.destination);
    expect(dests).toEqual(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname', '/run/secrets/s']);
    expect(mounts.find((m) => m.destination === '/etc/hosts')?.options).toContain('ro');
    expect(mounts.at(-1)?.options).toEqual(['rbind', 'ro']);
    expect(mounts.find((m) => m.destination === '/sys')?.options).toContain('ro');
  });

  it.each([
    ['every controller', { memory: true, swap: true, cpu: true, pids: true }, { pids: { limit: 64 }, memory: { limit: 256 << 20, swap: 256 << 20 }, cpu: { quota: 150_000, period: 100_000 } }],
    ['no swap accounting', { memory: true, swap: false, cpu: true, pids: true }, { pids: { limit: 64 }, memory: { limit: 256 << 20 }, cpu: { quota: 150_000, period: 100_000 } }],
    ['no cpu or pids controller', { memory: true, swap: true, cpu: false, pids: false }, { memory: { limit: 256 << 20, swap: 256 << 20 } }],
  ] as const)('writes each limit the host has a controller for (%s): swap counted with memory, a CFS quota of cpus periods', (_name, have, want) => {
    const limits = { ...STEP_LIMIT_DEFAULTS, pids: 64, memoryBytes: 256 << 20, cpus: 1.5 };
    const res = buildSpec({ ...base, limits, cgroups: { version: 1, hostSwap: true, ...have } }).linux.resources as Record<string, unknown>;
    const { devices, ...rest } = res;
    expect(devices).toBeDefined();
    expect(rest).toEqual(want);
  });

  it('sets no CPU quota when none is asked (cpus 0)', () => {
    const res = buildSpec({ ...base, limits: { ...STEP_LIMIT_DEFAULTS, cpus: 0 } }).linux.resources as Record<string, unknown>;
    expect(res.cpu).toBeUndefined();
  });

  it('masks and write-protects the kernel paths', () => {
    const spec = buildSpec(base);
    expect(spec.linux.maskedPaths).toEqual(expect.arrayContaining(['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware']));
    expect(spec.linux.readonlyPaths).toEqual(['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
  });
});

describe('seccompProfile', () => {
  const allowed = (p: ReturnType<typeof seccompProfile>, name: string): boolean =>
    p.syscalls.some((r) => r.action === 'SCMP_ACT_ALLOW' && r.names.includes(name) && r.args === undefined);

  it('denies by default with EPERM and never allows keyctl, io_uring or namespace tools without CAP_SYS_ADMIN', () => {
    const p = seccompProfile(DEFAULT_CAPABILITIES);
    expect(p.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(p.defaultErrnoRet).toBe(1);
    for (const name of ['keyctl', 'add_key', 'request_key', 'io_uring_setup', 'io_uring_enter', 'unshare', 'setns', 'mount', 'umount2', 'bpf', 'userfaultfd', 'kexec_load', 'open_by_handle_at', 'clone']) {
      expect(allowed(p, name), name).toBe(false);
    }
    for (const name of ['read', 'execve', 'chroot', 'fork', 'ptrace', 'arch_prctl']) expect(allowed(p, name), name).toBe(true);
  });

  it('allows clone only without namespace flags, and makes clone3 say ENOSYS', () => {
    const p = seccompProfile(DEFAULT_CAPABILITIES, 'x64');
    const clone = p.syscalls.find((r) => r.names.includes('clone'));
    expect(clone?.args).toEqual([{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
    expect(p.syscalls.find((r) => r.names.includes('clone3'))).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
    expect(p.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
  });

  it('opens capability groups only for held capabilities', () => {
    const admin = seccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN']);
    expect(allowed(admin, 'mount')).toBe(true);
    expect(allowed(admin, 'clone')).toBe(true);
    expect(admin.syscalls.some((r) => r.names.includes('clone3') && r.action === 'SCMP_ACT_ERRNO')).toBe(false);
    expect(allowed(seccompProfile([]), 'chroot')).toBe(false);
  });
});
