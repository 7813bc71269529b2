import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { builtin } from '../core/lazy-builtins.js';
import { UsageError } from './usage.js';

/** One `--ssh` flag: an id and what it names (an agent socket, or key files). */
export interface SshSpec {
  readonly id: string;
  readonly paths: readonly string[];
}

/**
 * `--ssh default|ID[=SOCKET|KEYFILE[,KEYFILE...]]` (buildx's syntax). `default`
 * (or any id) without paths is the agent of $SSH_AUTH_SOCK. Paths are checked
 * here; what they hold is looked at when the build starts.
 */
export function parseSshFlag(value: string): SshSpec {
  const eq = value.indexOf('=');
  const id = (eq < 0 ? value : value.slice(0, eq)).trim();
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) throw new UsageError(`--ssh "${value}": want ID[=SOCKET|KEYFILE[,KEYFILE]], the id made of letters, digits, '.', '_' and '-'`, 'build');
  let paths = eq < 0 ? [] : value.slice(eq + 1).split(',').filter((p) => p !== '');
  if (paths.length === 0) {
    const sock = process.env['SSH_AUTH_SOCK'];
    if (!sock) throw new UsageError(`--ssh ${id}: SSH_AUTH_SOCK is not set; start an agent (eval $(ssh-agent); ssh-add) or pass --ssh ${id}=SOCKET|KEYFILE`, 'build');
    paths = [sock];
  }
  for (const p of paths) {
    if (!existsSync(p)) throw new UsageError(`--ssh ${id}: ${p} does not exist`, 'build');
  }
  return { id, paths: paths.map((p) => path.resolve(p)) };
}

/** The agents a build forwards, by id; disposing stops the agents started for key files. */
export interface SshAgents extends AsyncDisposable {
  readonly sockets: ReadonlyMap<string, string>;
}

/**
 * Sockets for the builder: a single path that is a socket is an agent
 * already running; key files (BuildKit takes them too) are loaded into an
 * ssh-agent of our own, one per id, that lives exactly as long as the build.
 * A key never goes to disk again: ssh-add reads it on stdin.
 */
export async function openSshAgents(specs: readonly SshSpec[]): Promise<SshAgents> {
  const sockets = new Map<string, string>();
  const started: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of started.reverse()) await stop();
  };
  try {
    for (const spec of specs) {
      const only = spec.paths.length === 1 ? spec.paths[0]! : undefined;
      if (only !== undefined && (await stat(only)).isSocket()) {
        sockets.set(spec.id, only);
        continue;
      }
      const agent = await startAgent(spec.id);
      started.push(agent.stop);
      for (const key of spec.paths) await addKey(agent.socket, spec.id, key);
      sockets.set(spec.id, agent.socket);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  return { sockets, [Symbol.asyncDispose]: stopAll };
}

/**
 * `ssh-agent -D` in a private directory. It dies with this process even on
 * SIGKILL (setpriv's parent-death signal), so a killed build leaves no agent
 * holding its keys.
 */
async function startAgent(id: string): Promise<{ socket: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'buildlite-ssh-'));
  const socket = path.join(dir, 'agent.sock');
  const argv = ['--pdeathsig', 'KILL', '--', 'ssh-agent', '-D', '-a', socket];
  const child = builtin('node:child_process').spawn('setpriv', argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await ready(child, id);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socket, stop };
}

/** ssh-agent -D says where it listens once it does; an agent that exits first failed. */
function ready(child: ChildProcess, id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-500)));
    child.once('error', (e) => reject(new UsageError(`--ssh ${id}: cannot start ssh-agent (${(e as NodeJS.ErrnoException).code ?? e.message}): is openssh-client installed?`, 'build')));
    child.once('close', (code) => reject(new UsageError(`--ssh ${id}: ssh-agent exited (${code}): ${err.trim()}`, 'build')));
    builtin('node:readline').createInterface({ input: child.stdout! }).once('line', () => resolve());
  });
}

/** One key into the agent, read by ssh-add from stdin (no tty: a passphrase cannot be asked for). */
async function addKey(socket: string, id: string, file: string): Promise<void> {
  const key = await readFile(file).catch(() => {
    throw new UsageError(`--ssh ${id}: cannot read ${file}`, 'build');
  });
  const child = builtin('node:child_process').spawn('ssh-add', ['-q', '-'], {
    stdio: ['pipe', 'ignore', 'pipe'],
    // A session of its own: no controlling terminal to prompt on.
    detached: true,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', SSH_AUTH_SOCK: socket },
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-500)));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
    child.stdin.end(key);
  });
  if (code !== 0) {
    const why = /passphrase/i.test(err) ? 'it is protected by a passphrase (add it to your own ssh-agent and pass --ssh ID=$SSH_AUTH_SOCK)' : err.trim() || `ssh-add exited ${code}`;
    throw new UsageError(`--ssh ${id}: ${file} is not a key ssh-agent accepts: ${why}`, 'build');
  }
}
