import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { builtin } from './lazy-builtins.js';
import type { Readable } from 'node:stream';
import { BuildliteError, type ErrorCode } from './errors.js';

export class HostCommandError extends BuildliteError {
  readonly code: ErrorCode = 'INTERNAL';
}

/**
 * Short host commands (mount, umount, getfattr, runc delete) started by small
 * long-lived shells instead of by this process.
 *
 * Why: every child Node starts costs its main thread a fork of the whole Node
 * process, ~4-5 ms of CPU here before the child runs at all; a RUN step
 * starts five and a COPY two or three, and profiles of incremental builds
 * showed `ChildProcess.spawn` as the largest single cost of a step. A shell
 * runs a command with vfork: a command through a helper takes ~2 ms from
 * request to answer and ~1 ms of our CPU (`node -e` loop of `/bin/true`:
 * Node's own spawn 6.9 ms and 5 ms).
 *
 * Each helper runs one command at a time, so a pool serves concurrent steps
 * (at most MAX_HELPERS; beyond that, commands queue). Protocol: one line per
 * command on the helper's stdin, `'OUT' 'file' 'arg'...` (every word single-
 * quoted, so `eval` sees exactly our argv and interprets nothing of it); the
 * helper answers `E STATUS`. Stderr goes to the helper's own file in a private
 * directory, read only on failure; stdout to /dev/null or a file the caller
 * streams. Each helper has a directory of its own, which it removes when its
 * loop ends (we remove it when the helper dies). A helper is a process group of its own: a timeout or an abort kills
 * the group (the helper and its command) and the pool forgets it. End of its
 * stdin (we exited, or closed the pool) ends its loop after the current command.
 */
const SCRIPT = [
  'dir=$1',
  'run() {',
  '  out=$1; shift',
  '  "$@" </dev/null >"$out" 2>"$dir/err"',
  '  echo "E $?"',
  '}',
  'while IFS= read -r line; do',
  '  eval "run $line"',
  'done',
  // Removed by us already when we closed it (no process to start on the way out); not when we died.
  '[ ! -d "$dir" ] || rm -rf -- "$dir"',
].join('\n');

/** The bare environment every host command gets: nothing of ours (tokens, credentials) reaches them. */
export const HOST_ENV: Readonly<Record<string, string>> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

/** Enough for the steps a 2-4 core machine runs at once; more would only queue inside the kernel. */
const MAX_HELPERS = 4;
const STDERR_KEEP = 4096;
const DEFAULT_TIMEOUT_MS = 30_000;

export interface HostCommandOptions {
  /** SIGKILL after this long (default 30 s); the result then has `timedOut`. */
  readonly timeoutMs?: number;
  /** Abort kills the command; the result then has `aborted`. */
  readonly signal?: AbortSignal;
  /**
   * Must not wait behind other commands (killing or deleting a step's
   * container on cancel or timeout): when every helper is busy, it is
   * spawned directly instead of queued.
   */
  readonly urgent?: boolean;
}

export interface HostCommandResult {
  /** Exit status; 128+N when killed by signal N (as a shell reports it). */
  readonly code: number;
  /** The first 4 KiB of stderr, trimmed; read only when `code` is not 0. */
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly aborted: boolean;
}

interface Helper {
  readonly child: ChildProcess;
  /** Private (0700): its stderr file, and the stdout files of runReading. */
  readonly dir: string;
  /** Called with the status of the command it runs, or with an error when the helper is gone. */
  answer?: (status: number | Error) => void;
}

/** A pool of helper shells and the commands they run for us. */
export class HostCommands {
  private readonly idle: Helper[] = [];
  private readonly all = new Set<Helper>();
  private readonly queue: Array<(h: Helper) => void> = [];
  private seq = 0;
  private busy = 0;

  constructor(private readonly sh: string) {}

  /** Run `file args` to completion; stdout is discarded. */
  async run(file: string, args: readonly string[], opts: HostCommandOptions = {}): Promise<HostCommandResult> {
    return (await this.exec(file, args, opts, false)).result;
  }

  /**
   * Run `file args`, then hand its whole stdout to `read` as a stream. The
   * output waits in a file of the private directory, unlinked before `read`
   * starts, so nothing is left behind whatever `read` does. `value` is
   * absent when the command failed.
   */
  async runReading<T>(file: string, args: readonly string[], read: (stdout: Readable) => Promise<T>, opts: HostCommandOptions = {}): Promise<HostCommandResult & { value?: T }> {
    const { result, outPath } = await this.exec(file, args, opts, true);
    // None when aborted before it started; gone with a helper that was killed.
    const fh = outPath === undefined ? undefined : await open(outPath, 'r').catch(() => undefined);
    if (!fh) return result;
    try {
      await unlink(outPath!).catch(() => undefined);
      if (result.code !== 0) return result;
      return { ...result, value: await read(fh.createReadStream({ autoClose: false, start: 0 })) };
    } finally {
      await fh.close();
    }
  }

  /** Every helper is busy and no more may start: a command now would queue. */
  get saturated(): boolean {
    return this.idle.length === 0 && this.all.size >= MAX_HELPERS;
  }

  /**
   * Ends every helper (idempotent); a command already running runs to its end.
   * Idle helpers' directories go first, so they exit at once, and they keep
   * the event loop until they have: reaped by us, not left to init as orphans
   * (zombies that a slow init shows to `ps` for seconds after we exited).
   */
  close(): void {
    for (const h of this.all) {
      if (this.idle.includes(h)) rmSync(h.dir, { recursive: true, force: true });
      h.child.ref();
      h.child.stdin?.end();
    }
    this.all.clear();
    this.idle.length = 0;
  }

  private async exec(file: string, args: readonly string[], opts: HostCommandOptions, keepStdout: boolean): Promise<{ result: HostCommandResult; outPath?: string }> {
    if ([file, ...args].some((w) => w.includes('\n') || w.includes('\0'))) throw new HostCommandError(`host command ${file}: an argument holds a newline or NUL`);
    if (opts.signal?.aborted) return { result: { code: 137, stderr: '', timedOut: false, aborted: true } };
    const helper = await this.acquire();
    // Aborted while queued: the listener below would never fire.
    if (opts.signal?.aborted) {
      this.release(helper);
      return { result: { code: 137, stderr: '', timedOut: false, aborted: true } };
    }
    const outPath = keepStdout ? path.join(helper.dir, `out-${++this.seq}`) : undefined;
    const words = [outPath ?? '/dev/null', file, ...args];
    let ended: 'exited' | 'timedOut' | 'aborted' = 'exited';
    const status = await new Promise<number | Error>((resolve) => {
      const timer = setTimeout(() => {
        ended = 'timedOut';
        killGroup(helper);
      }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      const onAbort = (): void => {
        ended = 'aborted';
        killGroup(helper);
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      helper.answer = (s) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        helper.answer = undefined;
        resolve(s);
      };
      helper.child.stdin!.write(`${words.map(quote).join(' ')}\n`);
    });
    if (typeof status !== 'number') {
      // The helper is gone (killed by us or by someone else): so is its command.
      this.release(helper);
      if (ended !== 'exited') return { result: { code: 137, stderr: '', timedOut: ended === 'timedOut', aborted: ended === 'aborted' }, ...(outPath ? { outPath } : {}) };
      throw status;
    }
    // Read before the helper takes its next command, which truncates the file.
    const stderr = status === 0 ? '' : (await readFile(path.join(helper.dir, 'err'), 'latin1').catch(() => '')).slice(0, STDERR_KEEP).trim();
    this.release(helper);
    return { result: { code: status, stderr, timedOut: false, aborted: false }, ...(outPath ? { outPath } : {}) };
  }

  private acquire(): Promise<Helper> {
    this.busy++;
    this.holdLoop();
    const h = this.idle.pop();
    if (h) return Promise.resolve(h);
    if (this.all.size < MAX_HELPERS) return Promise.resolve(this.startHelper());
    return new Promise((resolve) => this.queue.push(resolve));
  }

  /** Back to the pool, or, for a helper that is gone, its place to the next queued command. */
  private release(h: Helper): void {
    this.busy--;
    const alive = this.all.has(h);
    const next = this.queue.shift();
    if (next) next(alive ? h : this.startHelper());
    else if (alive) this.idle.push(h);
    this.holdLoop();
  }

  private startHelper(): Helper {
    const dir = mkdtempSync(path.join(tmpdir(), 'buildlite-host-'));
    // Detached: its own process group (killGroup), and a kill of our group does not reach it.
    const child = builtin('node:child_process').spawn(this.sh, ['-c', SCRIPT, 'buildlite-host', dir], { stdio: ['pipe', 'pipe', 'ignore'], cwd: '/', env: HOST_ENV, detached: true });
    const helper: Helper = { child, dir };
    const gone = (why: string): void => {
      this.all.delete(helper);
      const at = this.idle.indexOf(helper);
      if (at >= 0) this.idle.splice(at, 1);
      // A command in flight gets its answer; release() then gives the helper's place to whoever queues.
      helper.answer?.(new HostCommandError(`the host command helper ${why}`));
      // Its loop did not get to remove its directory.
      rmSync(dir, { recursive: true, force: true });
    };
    child.once('error', (err) => gone(`failed to start (${err.message})`));
    child.once('exit', (code, sig) => gone(`exited (${sig ?? code})`));
    child.stdin!.on('error', () => undefined);
    builtin('node:readline').createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (line) => {
      if (line.startsWith('E ')) helper.answer?.(Number(line.slice(2)));
    });
    // The helpers never keep this process alive by themselves; a command in flight does (holdLoop).
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    this.all.add(helper);
    return helper;
  }

  /** The helpers and our pipes from them keep the event loop alive exactly while a command is in flight or queued. */
  private holdLoop(): void {
    for (const h of this.all) {
      const out = h.child.stdout as unknown as { ref?: () => void; unref?: () => void } | null;
      if (this.busy > 0) {
        out?.ref?.();
        h.child.ref(); // a killed helper's exit must still arrive
      } else {
        out?.unref?.();
        h.child.unref();
      }
    }
  }
}

/** The helper and its command go together; the helper's exit takes it out of the pool. */
function killGroup(h: Helper): void {
  try {
    if (h.child.pid !== undefined) process.kill(-h.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** One word for `eval`: single quotes take everything literally; a quote itself is closed, escaped and reopened. */
function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

let shared: HostCommands | null | undefined;

/** This process's pool; undefined when the host has no shell (callers then spawn directly). */
export function hostCommands(): HostCommands | undefined {
  if (shared === undefined) {
    const sh = ['/bin/sh', '/usr/bin/sh'].find((c) => existsSync(c));
    shared = sh ? new HostCommands(sh) : null;
    // When nothing else is left to do: the helpers end, and this process waits for them.
    if (shared) process.on('beforeExit', () => shared?.close());
  }
  return shared ?? undefined;
}

/**
 * `file args` through this process's pool, or spawned directly where there
 * is no shell: the same result either way. Stdout is discarded.
 */
export async function runOnHost(file: string, args: readonly string[], opts: HostCommandOptions = {}): Promise<HostCommandResult> {
  const pool = hostCommands();
  if (pool && lineSafe(file, args) && !(opts.urgent && pool.saturated)) return pool.run(file, args, opts);
  return spawnDirect(file, args, opts, undefined);
}

/** As runOnHost, handing stdout to `read` as a stream when the command succeeded. */
export async function readFromHost<T>(file: string, args: readonly string[], read: (stdout: Readable) => Promise<T>, opts: HostCommandOptions = {}): Promise<HostCommandResult & { value?: T }> {
  const pool = hostCommands();
  if (pool && lineSafe(file, args) && !(opts.urgent && pool.saturated)) return pool.runReading(file, args, read, opts);
  return spawnDirect(file, args, opts, read);
}

/** The helpers' protocol is a line per command: a path with a newline (legal, never ours) is spawned directly. */
function lineSafe(file: string, args: readonly string[]): boolean {
  return !file.includes('\n') && args.every((a) => !a.includes('\n') && !a.includes('\0'));
}

async function spawnDirect<T>(file: string, args: readonly string[], opts: HostCommandOptions, read: ((stdout: Readable) => Promise<T>) | undefined): Promise<HostCommandResult & { value?: T }> {
  if (opts.signal?.aborted) return { code: 137, stderr: '', timedOut: false, aborted: true };
  const child = builtin('node:child_process').spawn(file, [...args], { stdio: ['ignore', read ? 'pipe' : 'ignore', 'pipe'], env: HOST_ENV });
  let timedOut = false;
  let aborted = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const onAbort = (): void => {
    aborted = true;
    child.kill('SIGKILL');
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let stderr = '';
  child.stderr!.setEncoding('latin1').on('data', (d: string) => {
    if (stderr.length < STDERR_KEEP) stderr += d;
  });
  const exited = new Promise<number>((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', (code, sig) => resolve(code ?? (sig ? 128 + 9 : 137)));
  });
  try {
    const value = read
      ? await read(child.stdout!).catch((err: unknown) => {
          child.kill('SIGKILL');
          throw err;
        })
      : undefined;
    const code = await exited;
    if (timedOut || aborted) return { code: 137, stderr: '', timedOut, aborted };
    return { code, stderr: stderr.slice(0, STDERR_KEEP).trim(), timedOut, aborted, ...(code === 0 && read ? { value: value as T } : {}) };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
