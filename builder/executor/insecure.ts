import { readdirSync, readFileSync } from 'node:fs';
import type { RuntimeSpec } from './spec.js';

/**
 * What `RUN --security=insecure` grants once the operator and the build both
 * allowed it (docs/security.md T2): BuildKit's insecure mode, which Docker's
 * reference calls the equivalent of `docker run --privileged`.
 *
 * - every capability this process holds, in all five sets (ambient too, so a
 *   step under a non-root USER keeps them, as in BuildKit);
 * - no seccomp filter, no masked or read-only /proc and /sys paths, /sys
 *   writable;
 * - the device cgroup opens every character and block device, and the nodes
 *   BuildKit adds are created: fuse, cuse, kvm, net/tun, kmsg, loop-control,
 *   and the host's /dev/loopN.
 *
 * Namespaces stay (pid, mount, IPC, UTS, and network unless host networking
 * was granted too), as do limits and the timeout. Unlike BuildKit, cgroupfs is
 * not mounted: a step holds CAP_SYS_ADMIN and can mount it where it needs it.
 * With CAP_SYS_ADMIN, CAP_MKNOD and every device open, such a step can reach
 * the host: the grant is for builds one would let run as root on the machine.
 */
export interface InsecureGrant {
  /** Capability names, e.g. `CAP_SYS_ADMIN`. */
  readonly capabilities: readonly string[];
  readonly devices: ReadonlyArray<{ readonly path: string; readonly type: 'c' | 'b'; readonly major: number; readonly minor: number }>;
}

/** Capability numbers as the kernel's status lines count them (linux/capability.h). */
const CAPABILITY_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT',
  'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE',
  'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ',
  'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
].map((n) => `CAP_${n}`);

/** The device nodes BuildKit's insecure mode adds; each is harmless where the host lacks the driver (opening fails). */
const DEVICES = [
  { path: '/dev/kmsg', type: 'c', major: 1, minor: 11 },
  { path: '/dev/cuse', type: 'c', major: 10, minor: 203 },
  { path: '/dev/fuse', type: 'c', major: 10, minor: 229 },
  { path: '/dev/kvm', type: 'c', major: 10, minor: 232 },
  { path: '/dev/net/tun', type: 'c', major: 10, minor: 200 },
  { path: '/dev/loop-control', type: 'c', major: 10, minor: 237 },
] as const;

const LOOP_MAJOR = 7;

/**
 * The capabilities in a `/proc/<pid>/status` text's effective set (runc can
 * grant no more than it holds itself), by name; bits past the known names are left out.
 */
export function effectiveCapabilities(status: string): string[] {
  const hex = /^CapEff:\s*([0-9a-f]+)$/im.exec(status)?.[1];
  if (hex === undefined) return [];
  const bits = BigInt(`0x${hex}`);
  return CAPABILITY_NAMES.filter((_, i) => (bits >> BigInt(i)) & 1n);
}

/** What this host lets the grant hold: our own capabilities, and its loop devices. */
export function hostInsecureGrant(): InsecureGrant {
  const loops = readdirSync('/dev')
    .flatMap((n) => (/^loop([0-9]+)$/.exec(n) ? [Number(n.slice(4))] : []))
    .sort((a, b) => a - b)
    .map((minor) => ({ path: `/dev/loop${minor}`, type: 'b' as const, major: LOOP_MAJOR, minor }));
  return { capabilities: effectiveCapabilities(readFileSync('/proc/self/status', 'utf8')), devices: [...DEVICES, ...loops] };
}

/** Turns a sandbox spec into an insecure one: the changes listed above, and nothing else. */
export function grantInsecure(spec: RuntimeSpec, grant: InsecureGrant): void {
  const caps = [...grant.capabilities];
  spec.process.capabilities = { bounding: caps, effective: caps, permitted: caps, inheritable: caps, ambient: caps };
  delete spec.linux.seccomp;
  spec.linux.maskedPaths = [];
  spec.linux.readonlyPaths = [];
  for (const m of spec.mounts) if (m.destination === '/sys') m.options = m.options.filter((o) => o !== 'ro');
  const resources = (spec.linux.resources ?? {}) as Record<string, unknown>;
  resources.devices = [
    { allow: true, type: 'c', access: 'rwm' },
    { allow: true, type: 'b', access: 'rwm' },
  ];
  spec.linux.resources = resources;
  const nodes = (spec.linux.devices ?? []) as Array<{ path: string }>;
  const have = new Set(nodes.map((d) => d.path));
  spec.linux.devices = [...nodes, ...grant.devices.filter((d) => !have.has(d.path)).map((d) => ({ ...d, fileMode: 0o660, uid: 0, gid: 0 }))];
}
