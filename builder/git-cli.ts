import { BuildliteError, type ErrorCode } from '../core/errors.js';
import { redactUrlCredentials } from '../core/redact.js';
import { builtin } from '../core/lazy-builtins.js';

/**
 * Runs the `git` CLI for git sources, on repositories that are strangers'
 * (docs/security.md T7): nothing of this machine's git setup applies and
 * nothing in the fetched repository can run.
 *
 * - No system or global config, HOME pointing nowhere, no terminal prompts,
 *   no proxies from the environment (the environment is built here, whole).
 * - `core.hooksPath=/dev/null` and `core.fsmonitor=false`: no hook or monitor
 *   runs, whatever a config says; the repositories are fresh ones of ours, so
 *   no repository config exists to begin with.
 * - No redirects (`http.followRedirects=false`): the host the policy checked
 *   is the only one git talks to; no background gc or maintenance.
 * - Submodules are never touched implicitly (`submodule.recurse=false`,
 *   `fetch.recurseSubmodules=false`); the caller decides about them.
 * - Which transports may be used is the caller's, through GIT_ALLOW_PROTOCOL
 *   (git's own allow-list, which covers submodules and helpers too).
 */
const SAFE_CONFIG = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'core.askPass=',
  'credential.helper=',
  'gc.auto=0',
  'maintenance.auto=false',
  'init.defaultBranch=main',
  'advice.detachedHead=false',
  'http.followRedirects=false',
  // A transfer under 1 KB/s for a minute is stalled (git's default is to wait forever).
  'http.lowSpeedLimit=1000',
  'http.lowSpeedTime=60',
  'submodule.recurse=false',
  'fetch.recurseSubmodules=false',
  'fetch.writeCommitGraph=false',
  'protocol.version=2',
];

export class GitError extends BuildliteError {
  readonly code: ErrorCode;
  override readonly retryable: boolean;
  constructor(message: string, code: ErrorCode, retryable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.retryable = retryable;
  }
}

export interface GitRun {
  /** An empty private directory (git never looks above it for a repository: GIT_CEILING_DIRECTORIES). */
  readonly cwd: string;
  /** Added to the clean environment: auth config, the ssh command, an agent socket, GIT_ALLOW_PROTOCOL. */
  readonly env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
}

/** Bounds on what a git command may print; ls-remote of one ref is a few lines. */
const MAX_STDOUT = 4 << 20;
const STDERR_TAIL = 2048;

/**
 * `git <args>` with the safe environment; resolves to stdout. Files it writes
 * get the modes a umask of 022 gives, whatever this process's umask is, so a
 * checkout is the same everywhere. The process group is killed when `signal`
 * aborts. A failure is a GitError whose message ends with git's last words.
 */
export function runGit(args: readonly string[], run: GitRun): Promise<string> {
  run.signal.throwIfAborted();
  const argv = ['-c', 'umask 022 && exec git "$@"', 'git', ...SAFE_CONFIG.flatMap((c) => ['-c', c]), ...args];
  const child = builtin('node:child_process').spawn('/bin/sh', argv, {
    cwd: run.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: git's helpers (remote-https, ssh) die with it on abort.
    detached: true,
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: '/dev/null',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_TERMINAL_PROMPT: '0',
      GIT_CEILING_DIRECTORIES: run.cwd,
      LC_ALL: 'C',
      ...run.env,
    },
  });
  const kill = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  run.signal.addEventListener('abort', kill, { once: true });
  let out = '';
  let err = '';
  let tooMuch = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    if (out.length + d.length > MAX_STDOUT) {
      tooMuch = true;
      kill();
    } else out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err = (err + d).slice(-STDERR_TAIL);
  });
  const what = args.find((a) => !a.startsWith('-')) ?? 'git';
  return new Promise<string>((resolve, reject) => {
    child.once('error', (e) => reject(new GitError(`git ${what}: cannot run git (${(e as NodeJS.ErrnoException).code ?? e.message}): is git installed?`, 'INTERNAL', false, { cause: e })));
    child.once('close', (code, sig) => {
      run.signal.removeEventListener('abort', kill);
      if (run.signal.aborted) return reject(run.signal.reason as Error);
      if (tooMuch) return reject(new GitError(`git ${what}: printed more than ${MAX_STDOUT} bytes`, 'LIMIT_EXCEEDED', false));
      if (code === 0) return resolve(out);
      reject(classify(what, err, code, sig));
    });
  });
}

/** git's last words → a coded error: what the user should fix, or what a retry may fix. */
function classify(what: string, stderr: string, code: number | null, sig: NodeJS.Signals | null): GitError {
  const words = redactUrlCredentials(stderr.trim().split('\n').filter((l) => l.trim() !== '').slice(-4).join('; ')) || (sig ? `killed by ${sig}` : `exit ${code}`);
  const message = `git ${what} failed: ${words}`;
  if (/could not resolve host|connection refused|connection timed out|operation timed out|network is unreachable|no route to host|early EOF|the remote end hung up|connection reset|transfer rate|RPC failed/i.test(stderr)) {
    return new GitError(message, 'UNAVAILABLE', true);
  }
  if (/authentication failed|could not read (username|password)|permission denied \(publickey|terminal prompts disabled|returned error: 40[13]/i.test(stderr)) {
    return new GitError(message, 'UNAUTHENTICATED', false);
  }
  if (/not found|does not appear to be a git repository|couldn't find remote ref|not our ref|unadvertised object|no such ref|returned error: 404/i.test(stderr)) {
    return new GitError(message, 'NOT_FOUND', false);
  }
  return new GitError(message, 'INVALID_ARGUMENT', false);
}
