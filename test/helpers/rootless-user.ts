import { execFile, spawn } from 'node:child_process';
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLI, REPO_ROOT, type CliResult } from './cli.js';

const exec = promisify(execFile);

/**
 * An ordinary user made for a test, with the subordinate ids a rootless
 * build maps (given by scripts/provision.sh --rootless-user, as an operator
 * would), and its home in a temp dir. Commands run as it through setpriv:
 * its uid, its gid, its groups, none of our capabilities, only the environment given. `remove()` deletes
 * the user, its /etc/subuid and /etc/subgid lines and its home (files there
 * belong to its subordinate ids, which only root can remove).
 */
export interface RootlessUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** Its default state root: $XDG_DATA_HOME/buildlite, here ~/.local/share/buildlite. */
  readonly stateRoot: string;
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Runs `file args` as the user; never rejects. */
  run(file: string, args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string }): Promise<CliResult>;
  /** The built CLI as the user. */
  cli(args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string }): Promise<CliResult>;
  /** Gives the user its subordinate ranges (scripts/provision.sh --rootless-user). */
  provision(): Promise<void>;
  remove(): Promise<void>;
}

/** A new user, without subordinate ids until `provision()` (whatever /etc/login.defs would give). */
export async function createRootlessUser(): Promise<RootlessUser> {
  const name = `blrootless${process.pid % 100000}`;
  const base = await mkdtemp(path.join(os.tmpdir(), 'bl-rootless-'));
  await chmod(base, 0o755);
  const home = path.join(base, 'home');
  await exec('useradd', ['-m', '-d', home, '-s', '/bin/sh', '-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0', name]);
  const uid = Number((await exec('id', ['-u', name])).stdout.trim());
  const gid = Number((await exec('id', ['-g', name])).stdout.trim());
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    USER: name,
    LOGNAME: name,
    ...extra,
  });
  const run: RootlessUser['run'] = (file, args, opts = {}) =>
    new Promise((resolve) => {
      const child = spawn('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--init-groups', '--', file, ...args], {
        cwd: opts.cwd ?? home,
        env: env(opts.env),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', (err) => resolve({ code: -1, stdout, stderr: `${stderr}${err.message}` }));
      child.on('close', (code, signal) => resolve({ code: code ?? 128 + (signal ? os.constants.signals[signal] : 0), stdout, stderr }));
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    });
  return {
    name,
    uid,
    gid,
    home,
    stateRoot: path.join(home, '.local/share/buildlite'),
    env,
    run,
    cli: (args, opts = {}) => run(process.execPath, [CLI, ...args], opts),
    async provision() {
      await exec('bash', [path.join(REPO_ROOT, 'scripts/provision.sh'), '--quiet', '--rootless-user', name]);
    },
    async remove() {
      // Its processes first (all started by this test): one left running would hold files and the user.
      const { stdout } = await exec('ps', ['-o', 'pid=', '-u', String(uid)]).catch(() => ({ stdout: '' }));
      for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await exec('userdel', [name]).catch(() => undefined);
      await rm(base, { recursive: true, force: true });
    },
  };
}
