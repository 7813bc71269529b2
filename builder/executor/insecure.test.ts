import { describe, expect, it } from 'vitest';
import { effectiveCapabilities, grantInsecure } from './insecure.js';
import { buildSpec, DEFAULT_CAPABILITIES, STEP_LIMIT_DEFAULTS, type SpecInput } from './spec.js';

const input: SpecInput = {
  args: ['/bin/sh', '-c', 'true'],
  env: [],
  cwd: '/',
  user: { uid: 0, gid: 0, additionalGids: [] },
  hostname: 'h',
  network: 'none',
  limits: STEP_LIMIT_DEFAULTS,
  cgroups: { version: 2, memory: true, swap: true, hostSwap: true, cpu: true, pids: true },
  etcFiles: { hosts: '/b/hosts', resolvConf: '/b/resolv.conf', hostname: '/b/hostname' },
  mounts: [],
  cgroupsPath: '/buildlite/x',
  loopback: { sh: '/bin/sh', nsenter: '/usr/bin/nsenter', ip: ['/usr/sbin/ip'] },
};

describe('what security=insecure grants', () => {
  it('reads the effective set of a status text by name, leaving out bits past the known names', () => {
    expect(effectiveCapabilities('Name:\tx\nCapEff:\t0000000000200001\n')).toEqual(['CAP_CHOWN', 'CAP_SYS_ADMIN']);
    // This machine's runner lacked CAP_SYS_RESOURCE (bit 24); bit 63 is no capability.
    const caps = effectiveCapabilities('CapEff:\t800001fffeffffff\n');
    expect(caps).toHaveLength(40);
    expect(caps).not.toContain('CAP_SYS_RESOURCE');
    expect(caps.at(-1)).toBe('CAP_CHECKPOINT_RESTORE');
    expect(effectiveCapabilities('no such line')).toEqual([]);
  });

  it('gives every capability in all sets, drops seccomp and the masked paths, opens devices and /sys; keeps namespaces and limits', () => {
    const sandbox = buildSpec(input);
    const spec = buildSpec(input);
    grantInsecure(spec, { capabilities: ['CAP_SYS_ADMIN', 'CAP_CHOWN'], devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229 }, { path: '/dev/null', type: 'c', major: 1, minor: 3 }] });
    expect(sandbox.linux.seccomp).toBeDefined();
    expect(spec.linux.seccomp).toBeUndefined();
    expect(spec.process.capabilities).toEqual(Object.fromEntries(['bounding', 'effective', 'permitted', 'inheritable', 'ambient'].map((k) => [k, ['CAP_SYS_ADMIN', 'CAP_CHOWN']])));
    expect((sandbox.process.capabilities as { bounding: string[] }).bounding).toEqual([...DEFAULT_CAPABILITIES]);
    expect(spec.linux.maskedPaths).toEqual([]);
    expect(spec.linux.readonlyPaths).toEqual([]);
    expect(spec.mounts.find((m) => m.destination === '/sys')?.options).not.toContain('ro');
    expect(sandbox.mounts.find((m) => m.destination === '/sys')?.options).toContain('ro');
    const res = spec.linux.resources as { devices: unknown[]; pids: unknown };
    expect(res.devices).toEqual([{ allow: true, type: 'c', access: 'rwm' }, { allow: true, type: 'b', access: 'rwm' }]);
    expect(res.pids).toEqual((sandbox.linux.resources as { pids: unknown }).pids);
    // Nodes already there are not made twice.
    const nodes = (spec.linux.devices as Array<{ path: string }>).map((d) => d.path);
    expect(nodes.filter((p) => p === '/dev/null')).toHaveLength(1);
    expect(nodes).toContain('/dev/fuse');
    expect(spec.linux.namespaces).toEqual(sandbox.linux.namespaces);
    expect(spec.process.noNewPrivileges).toBe(sandbox.process.noNewPrivileges);
  });
});
