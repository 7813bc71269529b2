import { BUILD_LIMIT_DEFAULTS } from '../../core/limits.js';
import type { Mount } from '../../core/mount.js';
import type { CgroupSupport } from './cgroup-support.js';
import type { StepLimits } from './executor.js';
import { seccompProfile, type SeccompProfile } from './seccomp.js';
import type { ResolvedUser } from './user.js';

/**
 * The OCI runtime spec of one step. runc adds nothing on its own (no seccomp,
 * three capabilities, no masked paths), so every protection is written here;
 * the values follow Docker/containerd's defaults, each with its reason.
 */

/** Docker's 14 default capabilities; inheritable and ambient stay empty. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
] as const;

/** A step's limits when the operator sets none: the build defaults, whose reasons are in core/limits.ts. */
export const STEP_LIMIT_DEFAULTS: StepLimits = {
  stepTimeoutMs: BUILD_LIMIT_DEFAULTS.stepTimeoutMs,
  memoryBytes: BUILD_LIMIT_DEFAULTS.memoryBytes,
  cpus: BUILD_LIMIT_DEFAULTS.cpus,
  pids: BUILD_LIMIT_DEFAULTS.pids,
};

/** The kernel's default CFS period (100 ms); a quota of `cpus` periods' worth of CPU time per period. */
export const CPU_PERIOD_US = 100_000;

/** Docker's and BuildKit's value; a build tool that opens many files should not hit 1024. */
export const NOFILE = 1048576;

/** Same list as BuildKit's system.DefaultPathEnv, for images that set no PATH. */
export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** containerd's masked paths: kernel state a build has no business reading. */
export const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];

/** containerd's read-only paths: kernel knobs that root in the sandbox could otherwise turn. */
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

interface DeviceNode {
  path: string;
  type: 'c';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

/** The nodes runc creates in the sandbox's /dev (it adds the /dev/fd, stdio and ptmx links itself). */
const DEVICE_NODES: DeviceNode[] = [
  ['/dev/null', 1, 3], ['/dev/zero', 1, 5], ['/dev/full', 1, 7], ['/dev/random', 1, 8], ['/dev/urandom', 1, 9], ['/dev/tty', 5, 0],
].map(([p, major, minor]) => ({ path: p as string, type: 'c', major: major as number, minor: minor as number, fileMode: 0o666, uid: 0, gid: 0 }));

interface DeviceRule {
  allow: boolean;
  type?: 'c' | 'b' | 'a';
  major?: number;
  minor?: number;
  access: string;
}

/**
 * Deny every device, then Docker's default allow list: mknod of any node
 * (useless without read/write), the standard character devices, the pty
 * master and slaves. /dev/net/tun (10:200), allowed by Docker, stays denied:
 * a build has no network device to make.
 */
const DEVICE_RULES: DeviceRule[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2]].map(
    ([major, minor]): DeviceRule => ({ allow: true, type: 'c', major: major!, minor: minor!, access: 'rwm' }),
  ),
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

export interface SpecMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface RuntimeSpec {
  ociVersion: string;
  process: Record<string, unknown>;
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: SpecMount[];
  hooks?: Record<string, Array<{ path: string; args: string[]; env?: string[]; timeout?: number }>>;
  /** No seccomp only for an insecure step (insecure.ts). */
  linux: Record<string, unknown> & { seccomp?: SeccompProfile };
}

/** A host command that brings `lo` up inside the namespace of the pid it reads from the OCI state on stdin. */
export interface LoopbackHook {
  /** An absolute host `sh`. */
  readonly sh: string;
  /** An absolute host `nsenter`. */
  readonly nsenter: string;
  /** The host's `ip` as argv, e.g. ['/usr/sbin/ip'] or ['/bin/busybox', 'ip']. */
  readonly ip: readonly string[];
}

export interface SpecInput {
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  readonly user: ResolvedUser;
  readonly hostname: string;
  /** `none`: own netns with only `lo`; `host`: the host's (already granted by the caller). */
  readonly network: 'none' | 'host';
  readonly limits: StepLimits;
  /** What the host's cgroups enforce: a limit without its controller is left out (cgroup-support.ts reports it). */
  readonly cgroups: CgroupSupport;
  /**
   * no_new_privs: off by default, as in Docker and BuildKit, so setuid tools
   * (su, sudo, ping) behave in RUN as they do in `docker run`.
   */
  readonly noNewPrivileges?: boolean;
  /** Host paths of the files bind-mounted read-only over /etc/hosts, /etc/resolv.conf, /etc/hostname. */
  readonly etcFiles: { readonly hosts: string; readonly resolvConf: string; readonly hostname: string };
  readonly mounts: readonly Mount[];
  /** The step's own cgroup; none for a rootless builder, which may make none (cgroup-support.ts). */
  readonly cgroupsPath?: string;
  /**
   * runc runs in our user namespace (runc.ts). The one change the spec needs
   * there: sysfs can be mounted only by the owner of the network namespace,
   * so a step on the host's network gets the host's /sys bound read-only, as
   * BuildKit's rootless mode does. A step's own netns is ours: sysfs as usual.
   */
  readonly rootless?: boolean;
  /**
   * RLIMIT_NOFILE; default NOFILE. Raising a hard limit needs CAP_SYS_RESOURCE,
   * which a worker in a container may lack: the executor then passes its own hard limit.
   */
  readonly nofile?: number;
  /**
   * For a runtime that leaves `lo` down in the netns it creates: a hook that
   * raises it. runc needs none (see buildSpec).
   */
  readonly loopback?: LoopbackHook;
}

/**
 * The whole spec. Loopback: runc (1.0 and later) brings `lo` up itself in a
 * network namespace it creates (a new netns without a path gets its loopback
 * "network"), before the step's process starts; test/executor/isolation.test.ts
 * checks it is up. For a runtime that does not, `loopback` adds a
 * createRuntime hook (run on the host after the namespaces exist) that enters
 * the netns with nsenter and runs `ip link set lo up`; a failing hook fails
 * the container. The hook was three more execs per step (sh, nsenter, ip):
 * ~5-20 ms of every RUN (bench/run-overhead.mjs, spec+hook against spec-bare).
 */
export function buildSpec(input: SpecInput): RuntimeSpec {
  const caps = [...DEFAULT_CAPABILITIES];
  const env = input.env.some((e) => e.startsWith('PATH=')) ? [...input.env] : [DEFAULT_PATH, ...input.env];
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (input.network === 'none') namespaces.push({ type: 'network' });
  const spec: RuntimeSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.user.uid, gid: input.user.gid, additionalGids: input.user.additionalGids },
      args: [...input.args],
      env,
      cwd: input.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: input.nofile ?? NOFILE, soft: input.nofile ?? NOFILE }, ...rootlessNproc(input)],
      noNewPrivileges: input.noNewPrivileges ?? false,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: input.hostname,
    mounts: [...standardMounts(input.rootless === true && input.network === 'host'), ...etcMounts(input.etcFiles), ...input.mounts.map(toSpecMount)],
    linux: {
      namespaces,
      ...(input.cgroupsPath !== undefined ? { cgroupsPath: input.cgroupsPath } : {}),
      resources: resourcesOf(input.limits, input.cgroups),
      devices: DEVICE_NODES,
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: seccompProfile(caps),
    },
  };
  if (input.network === 'none' && input.loopback) {
    const lo = input.loopback;
    // The state JSON comes from runc on one line with no spaces ("pid":123);
    // the tools arrive as positional args so no path is ever parsed by the shell.
    const script = 'read -r s; p=${s#*\\"pid\\":}; p=${p%%[!0-9]*}; [ -n "$p" ] || exit 1; n=$1; shift; exec "$n" --net=/proc/$p/ns/net "$@"';
    spec.hooks = {
      createRuntime: [
        {
          path: lo.sh,
          args: ['sh', '-c', script, 'sh', lo.nsenter, ...lo.ip, 'link', 'set', 'lo', 'up'],
          env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
          timeout: 10,
        },
      ],
    };
  }
  return spec;
}

/**
 * Without a pids cgroup, a rootless step still gets a ceiling on processes:
 * RLIMIT_NPROC, which the kernel enforces on every uid but the host's root
 * (and a step's root here is the user). It counts per uid rather than per
 * step (steps running at once as the same uid share it), and a refused fork
 * cannot be told from the step's own failure, so cgroup-support.ts still
 * reports the limit as not enforced as asked.
 */
function rootlessNproc(input: SpecInput): Array<{ type: string; hard: number; soft: number }> {
  if (!input.rootless || input.cgroups.pids) return [];
  return [{ type: 'RLIMIT_NPROC', hard: input.limits.pids, soft: input.limits.pids }];
}

/**
 * The step's cgroup: devices, and each limit the host has a controller for.
 * Memory: swap included (memsw on v1, swap.max on v2: runc writes memory.swap
 * as memory plus swap), so a step cannot swap its way past the limit. CPU: a
 * CFS quota only when one is asked (0 means none).
 */
export function resourcesOf(limits: StepLimits, cgroups: CgroupSupport): Record<string, unknown> {
  return {
    devices: DEVICE_RULES,
    ...(cgroups.pids ? { pids: { limit: limits.pids } } : {}),
    ...(cgroups.memory ? { memory: { limit: limits.memoryBytes, ...(cgroups.swap ? { swap: limits.memoryBytes } : {}) } } : {}),
    ...(cgroups.cpu && limits.cpus > 0 ? { cpu: { quota: Math.round(limits.cpus * CPU_PERIOD_US), period: CPU_PERIOD_US } } : {}),
  };
}

function standardMounts(bindSys: boolean): SpecMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    bindSys
      ? { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] }
      : { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
}

function etcMounts(files: SpecInput['etcFiles']): SpecMount[] {
  const ro = ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'];
  return [
    { destination: '/etc/hosts', type: 'bind', source: files.hosts, options: ro },
    { destination: '/etc/resolv.conf', type: 'bind', source: files.resolvConf, options: ro },
    { destination: '/etc/hostname', type: 'bind', source: files.hostname, options: ro },
  ];
}

function toSpecMount(m: Mount): SpecMount {
  const options = [...m.options];
  if (m.type === 'bind' && !options.includes('bind') && !options.includes('rbind')) options.unshift('rbind');
  return { destination: m.target!, type: m.type, source: m.source, options };
}

/** Contents of the bundle's /etc files. */
export function etcFileContents(hostname: string, network: 'none' | 'host', hostResolvConf: string): { hosts: string; resolvConf: string; hostname: string } {
  const hosts = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `127.0.1.1\t${hostname}`,
    '',
  ].join('\n');
  // Without a network there is nothing to ask; an empty file makes resolvers fail fast.
  return { hosts, resolvConf: network === 'host' ? hostResolvConf : '', hostname: `${hostname}\n` };
}
