import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAPPED_IDS, RootlessSetupError, subordinateIds, type IdRange } from './subids.js';

/**
 * Rootless mode. Node cannot enter a user namespace itself (unshare(2) needs a
 * single-threaded process), so an ordinary user's command that opens a state
 * root runs again as a child, inside a user namespace and a mount namespace
 * of its own, made by util-linux `unshare` with the user's subordinate ids
 * mapped by newuidmap/newgidmap: uid 0 there is the user, 1..65536 their
 * /etc/subuid range (gids likewise). That is the shape of `buildah unshare`
 * and of rootlesskit under BuildKit. Inside, the builder is root as far as
 * its files go, so the code that mounts overlayfs, extracts layers (chown to
 * an image's uids) and diffs runs unchanged; runc runs there in rootless
 * mode (builder/executor). The child's mounts live and die with its mount
 * namespace. This process only waits, passing signals on.
 */

/** Commands that open a state root, when they run here rather than on a build service. */
export function needsUserNamespace(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  switch (cmd) {
    case 'build':
      return !remote(args, env) && !flagGiven(args, '--check');
    case 'push':
    case 'du':
    case 'prune':
    case 'debug':
      return !remote(args, env);
    case 'worker':
      return true;
    case 'serve':
      return flagGiven(args, '--embedded-worker');
    default:
      return false;
  }
}

/** `--server`, else BUILDLITE_SERVER, as cli/remote.ts reads them; an empty value is no server. */
function remote(args: readonly string[], env: NodeJS.ProcessEnv): boolean {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a === '--server') value = args[++i];
    else if (a.startsWith('--server=')) value = a.slice('--server='.length);
  }
  return Boolean(value ?? env['BUILDLITE_SERVER']);
}

function flagGiven(args: readonly string[], flag: string): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === flag || a.startsWith(`${flag}=`));
}

/** Signals a user or a supervisor sends us, passed to the child (which runs in a process group of its own). */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGWINCH', 'SIGUSR1', 'SIGUSR2'] as const;

/** The argv of `unshare` that runs `command` in the namespace: exported for the tests and `--help`'s sake of readers. */
export function unshareArgs(uids: IdRange, gids: IdRange, command: readonly string[]): string[] {
  return [
    '--user',
    '--map-root-user',
    // util-linux 2.38 (Debian 12): OUTER,INNER,COUNT; it calls newuidmap/newgidmap with these and 0 -> the user.
    `--map-users=${uids.start},1,${Math.min(uids.count, MAPPED_IDS)}`,
    `--map-groups=${gids.start},1,${Math.min(gids.count, MAPPED_IDS)}`,
    '--mount',
    '--propagation',
    'private',
    '--',
    ...command,
  ];
}

/**
 * Runs this same command line in the user namespace and returns its exit
 * status (128+N when a signal N ended it). The child dies with us
 * (`setpriv --pdeathsig KILL`): its own watcher then stops its steps, as when
 * a root build is killed (docs/security.md T12).
 */
export async function runInUserNamespace(argv: readonly string[]): Promise<number> {
  const tools = findTools();
  checkUserNamespaces();
  const me = os.userInfo();
  const { uids, gids } = subordinateIds({ name: me.username, uid: me.uid, gid: me.gid });
  const self = [process.execPath, ...process.execArgv, process.argv[1]!, ...argv];
  const child = spawn(tools.unshare, unshareArgs(uids, gids, [tools.setpriv, '--pdeathsig', 'KILL', '--', ...self]), {
    stdio: 'inherit',
    // Its own process group: a Ctrl-C reaches it once, through us, not twice.
    detached: true,
  });
  const handlers = FORWARDED.map((sig) => {
    const h = () => {
      try {
        child.kill(sig);
      } catch {
        // already gone
      }
    };
    process.on(sig, h);
    return () => process.off(sig, h);
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new RootlessSetupError(`rootless: cannot start ${tools.unshare}: ${err.message}`, { cause: err })));
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 9) : 9)));
    });
  } finally {
    for (const off of handlers) off();
  }
}

interface Tools {
  readonly unshare: string;
  readonly setpriv: string;
}

/** util-linux's unshare and setpriv, and the setuid newuidmap/newgidmap unshare calls (Debian package uidmap). */
function findTools(): Tools {
  const dirs = (process.env['PATH'] ?? '').split(':').filter((d) => path.isAbsolute(d));
  const find = (name: string) => [...dirs, '/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => path.join(d, name)).find((p) => executable(p));
  const unshare = find('unshare');
  const setpriv = find('setpriv');
  if (!unshare || !setpriv) throw new RootlessSetupError('rootless: util-linux unshare and setpriv are needed to enter a user namespace: as root, bash scripts/provision.sh (or apt-get install util-linux)');
  if (!find('newuidmap') || !find('newgidmap')) {
    throw new RootlessSetupError('rootless: newuidmap and newgidmap (Debian package uidmap) map subordinate ids into the user namespace and are not installed: as root, bash scripts/provision.sh (or apt-get install uidmap)');
  }
  return { unshare, setpriv };
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The sysctls that turn unprivileged user namespaces off, checked so the error says which one. */
export function checkUserNamespaces(procSys = '/proc/sys'): void {
  const read = (f: string) => (existsSync(path.join(procSys, f)) ? readFileSync(path.join(procSys, f), 'utf8').trim() : undefined);
  if (read('user/max_user_namespaces') === '0') {
    throw new RootlessSetupError('rootless: user namespaces are disabled on this machine (user.max_user_namespaces = 0): as root, sysctl -w user.max_user_namespaces=15000');
  }
  if (read('kernel/unprivileged_userns_clone') === '0') {
    throw new RootlessSetupError('rootless: unprivileged user namespaces are disabled on this machine (kernel.unprivileged_userns_clone = 0): as root, sysctl -w kernel.unprivileged_userns_clone=1');
  }
  // Ubuntu 23.10 and later: the namespace is made, but without capabilities unless a profile allows it.
  if (read('kernel/apparmor_restrict_unprivileged_userns') === '1') {
    throw new RootlessSetupError(
      'rootless: AppArmor restricts unprivileged user namespaces on this machine (kernel.apparmor_restrict_unprivileged_userns = 1): as root, give node an AppArmor profile with `userns,` or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0',
    );
  }
}
