import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLI, REPO_ROOT, type CliResult } from './cli.js';

const exec = promisify(execFile);

/**
 * useradd, userdel and usermod lock /etc/passwd and /etc/subuid and give up at
 * once when another holds the lock: test files running side by side each make
 * a user, so a lock held for a moment is waited out.
 */
async function withAccountLock(file: string, args: readonly string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await exec(file, [...args]);
      return;
    } catch (err) {
      if (attempt >= 10 || !/lock/i.test(String((err as { stderr?: string }).stderr ?? ''))) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

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
  /** The built CLI as the user, left running: a test signals it (its pid is the CLI's own, setpriv having exec'd it). */
  startCli(args: readonly string[]): RunningCli;
  /** Pids of the user's processes (a rootless step's root is the user, so its processes count). */
  processes(): Promise<number[]>;
  /** Gives the user its subordinate ranges (scripts/provision.sh --rootless-user). */
  provision(): Promise<void>;
  remove(): Promise<void>;
}

export interface RunningCli {
  readonly child: ChildProcess;
  output(): string;
  waitFor(re: RegExp, ms?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A new user, without subordinate ids until `provision()` (whatever /etc/login.defs would give). */
export async function createRootlessUser(): Promise<RootlessUser> {
  const name = `blrootless${process.pid % 100000}`;
  const base = await mkdtemp(path.join(os.tmpdir(), 'bl-rootless-'));
  await chmod(base, 0o755);
  const home = path.join(base, 'home');
  // A user of this name left by a run of ours that was killed before its afterAll.
  await withAccountLock('userdel', [name]).catch(() => undefined);
  await withAccountLock('useradd', ['-m', '-d', home, '-s', '/bin/sh', '-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0', name]);
  const uid = Number((await exec('id', ['-u', name])).stdout.trim());
  const gid = Number((await exec('id', ['-g', name])).stdout.trim());
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    USER: name,
    LOGNAME: name,
    ...extra,
  });
  const setpriv = (file: string, args: readonly string[]) => ['--reuid', String(uid), '--regid', String(gid), '--init-groups', '--', file, ...args];
  const run: RootlessUser['run'] = (file, args, opts = {}) =>
    new Promise((resolve) => {
      const child = spawn('setpriv', setpriv(file, args), {
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
  const processes = async (): Promise<number[]> => {
    const { stdout } = await exec('ps', ['-o', 'pid=', '-u', String(uid)]).catch(() => ({ stdout: '' }));
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  };
  return {
    name,
    uid,
    gid,
    home,
    stateRoot: path.join(home, '.local/share/buildlite'),
    env,
    run,
    cli: (args, opts = {}) => run(process.execPath, [CLI, ...args], opts),
    startCli(args) {
      const child = spawn('setpriv', setpriv(process.execPath, [CLI, ...args]), { cwd: home, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      return {
        child,
        exited,
        output: () => out,
        async waitFor(re, ms = 60_000) {
          const deadline = Date.now() + ms;
          while (!re.test(out)) {
            if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${re} in the output of buildlite ${args.join(' ')}:\n${out.slice(-3000)}`);
            await new Promise((r) => setTimeout(r, 20));
          }
        },
      };
    },
    processes,
    async provision() {
      await withAccountLock('bash', [path.join(REPO_ROOT, 'scripts/provision.sh'), '--quiet', '--rootless-user', name]);
    },
    async remove() {
      // Its processes first (all started by this test): one left running would hold files and the user.
      for (const pid of await processes()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await withAccountLock('userdel', [name]).catch(() => undefined);
      await rm(base, { recursive: true, force: true });
    },
  };
}
