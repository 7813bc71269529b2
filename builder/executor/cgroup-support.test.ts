import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCgroups, rootlessCgroups, unenforced, type CgroupHost } from './cgroup-support.js';
import { STEP_LIMIT_DEFAULTS } from './spec.js';

/** A directory tree laid out like a host's /sys/fs/cgroup and /proc files, with these files. */
async function host(tmp: string, name: string, files: Record<string, string>): Promise<CgroupHost> {
  const dir = path.join(tmp, name);
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), text);
  }
  return { fsRoot: path.join(dir, 'cgroup'), selfCgroup: path.join(dir, 'self-cgroup'), meminfo: path.join(dir, 'meminfo') };
}

const SWAP = 'MemTotal: 16000000 kB\nSwapTotal: 2097148 kB\n';
const NO_SWAP = 'MemTotal: 16000000 kB\nSwapTotal: 0 kB\n';

describe('cgroup support', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-cgroups-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('rootless: no controller is ours on a full v1 host, and each limit but the timeout is named with why', () => {
    const full = { version: 1 as const, memory: true, swap: true, hostSwap: true, cpu: true, pids: true };
    const s = rootlessCgroups(full);
    expect(s).toMatchObject({ memory: false, swap: false, cpu: false, pids: false });
    const lines = unenforced(s, { ...STEP_LIMIT_DEFAULTS, cpus: 2 });
    expect(lines.map((l) => l.split(':')[0])).toEqual(['memory', 'cpus', 'pids']);
    for (const l of lines) expect(l).toContain('rootless on cgroup v1, which has no delegation to a user');
    expect(lines[2]).toContain('the pids limit of 4096 is only a per-uid RLIMIT_NPROC');
    expect(unenforced(s, { ...STEP_LIMIT_DEFAULTS, cpus: 0 }).map((l) => l.split(':')[0])).toEqual(['memory', 'pids']);
  });

  it('v1 with every controller and swap accounting: everything enforced, nothing to report', async () => {
    const h = await host(tmp, 'v1-full', {
      'cgroup/memory/memory.limit_in_bytes': '', 'cgroup/memory/memory.memsw.limit_in_bytes': '',
      'cgroup/cpu/cpu.cfs_quota_us': '', 'cgroup/pids/cgroup.procs': '', meminfo: SWAP,
    });
    const s = detectCgroups(h);
    expect(s).toEqual({ version: 1, memory: true, swap: true, hostSwap: true, cpu: true, pids: true });
    expect(unenforced(s, { ...STEP_LIMIT_DEFAULTS, cpus: 2 })).toEqual([]);
  });

  it('v1 without swap accounting on a host with swap: says memory is not bounded with swap, naming the limit', async () => {
    const h = await host(tmp, 'v1-noswap', { 'cgroup/memory/memory.limit_in_bytes': '', 'cgroup/cpu/cpu.cfs_quota_us': '', 'cgroup/pids/cgroup.procs': '', meminfo: SWAP });
    const s = detectCgroups(h);
    expect(s).toMatchObject({ version: 1, memory: true, swap: false, hostSwap: true });
    expect(unenforced(s, { ...STEP_LIMIT_DEFAULTS, memoryBytes: 256 << 20 })).toEqual([
      'memory: cgroup v1 has no swap accounting (boot with swapaccount=1): a step may use swap beyond the memory limit of 256 MiB',
    ]);
  });

  it('v1 without swap accounting on a host with no swap: nothing to report (memory alone bounds a step)', async () => {
    const h = await host(tmp, 'v1-noswap-nohostswap', { 'cgroup/memory/memory.limit_in_bytes': '', 'cgroup/cpu/cpu.cfs_quota_us': '', 'cgroup/pids/cgroup.procs': '', meminfo: NO_SWAP });
    expect(unenforced(detectCgroups(h), STEP_LIMIT_DEFAULTS)).toEqual([]);
  });

  it('v1 without cpu and pids controllers: a CPU quota (only when asked) and the pids limit are reported', async () => {
    const h = await host(tmp, 'v1-bare', { 'cgroup/memory/memory.limit_in_bytes': '', 'cgroup/memory/memory.memsw.limit_in_bytes': '', meminfo: NO_SWAP });
    const s = detectCgroups(h);
    expect(s).toMatchObject({ cpu: false, pids: false });
    expect(unenforced(s, { ...STEP_LIMIT_DEFAULTS, cpus: 0 })).toEqual([
      'pids: cgroup v1 has no pids controller: the pids limit of 4096 is not enforced (a fork bomb runs until the step timeout)',
    ]);
    expect(unenforced(s, { ...STEP_LIMIT_DEFAULTS, cpus: 1.5 })[0]).toBe('cpus: cgroup v1 has no cpu controller: the CPU quota of 1.5 CPUs is not enforced');
  });

  it('v2: controllers from cgroup.controllers, swap from memory.swap.max in our own cgroup', async () => {
    const full = await host(tmp, 'v2-full', {
      'cgroup/cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
      'cgroup/system.slice/app.service/memory.max': 'max\n',
      'cgroup/system.slice/app.service/memory.swap.max': 'max\n',
      'self-cgroup': '0::/system.slice/app.service\n',
      meminfo: SWAP,
    });
    expect(detectCgroups(full)).toEqual({ version: 2, memory: true, swap: true, hostSwap: true, cpu: true, pids: true });
    const noSwap = await host(tmp, 'v2-noswap', {
      'cgroup/cgroup.controllers': 'memory pids\n',
      'cgroup/init.scope/memory.max': 'max\n',
      'self-cgroup': '0::/\n',
      meminfo: SWAP,
    });
    const s = detectCgroups(noSwap);
    expect(s).toEqual({ version: 2, memory: true, swap: false, hostSwap: true, cpu: false, pids: true });
    expect(unenforced(s, { ...STEP_LIMIT_DEFAULTS, cpus: 1 })).toEqual([
      'memory: cgroup v2 has no memory.swap.max: a step may use swap beyond the memory limit of 4 GiB',
      'cpus: cgroup v2 has no cpu controller: the CPU quota of 1 CPU is not enforced',
    ]);
  });

  it('this host: what it reports matches the files runc would write', () => {
    const s = detectCgroups();
    const fs = '/sys/fs/cgroup';
    if (s.version === 1) {
      expect(s.memory).toBe(existsSync(`${fs}/memory/memory.limit_in_bytes`));
      expect(s.swap).toBe(existsSync(`${fs}/memory/memory.memsw.limit_in_bytes`));
      expect(s.cpu).toBe(existsSync(`${fs}/cpu/cpu.cfs_quota_us`));
      expect(s.pids).toBe(existsSync(`${fs}/pids/cgroup.procs`));
    } else {
      expect(existsSync(`${fs}/cgroup.controllers`)).toBe(true);
    }
  });
});
