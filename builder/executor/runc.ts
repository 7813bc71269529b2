import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { chown, lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { AsyncStack } from '../../core/dispose.js';
import type { Mount } from '../../core/mount.js';
import { mountAt, unmountAt } from '../../core/mounter.js';
import { cleanAbs, resolveInRoot } from '../../core/safe-path.js';
import { runsRootless } from '../../core/userns.js';
import { detectCgroups, rootlessCgroups, unenforced, type CgroupSupport } from './cgroup-support.js';
import { cgroupsPathOf, readOomKilled, readPidsLimited, removeCgroup } from './cgroups.js';
import { checkProcess, overStepLimits } from './checks.js';
import { newContainerId, ownPrefix } from './container-ids.js';
import { ExecCancelledError, ExecutorOptionError, SandboxError, SandboxPermissionError } from './errors.js';
import type { ExecOptions, ExecResult, Executor, ProcessSpec, StepLimits } from './executor.js';
import { findSetpriv, findShell } from './host-tools.js';
import { grantInsecure, hostInsecureGrant, type InsecureGrant } from './insecure.js';
import { OrphanReaper } from './reaper.js';
import { RUNC_ENV, RuncCli } from './runc-cli.js';
import { buildSpec, etcFileContents, NOFILE, STEP_LIMIT_DEFAULTS, type LoopbackHook } from './spec.js';
import { MountStubs } from './stubs.js';
import { removeBundle, sweepDeadSteps, type StepSweepReport, type StepSweepScope } from './sweep.js';
import { resolveUser } from './user.js';
import { builtin } from '../../core/lazy-builtins.js';

export interface RuncExecutorOptions {
  /** Private state: bundles live here; created 0700. */
  readonly stateDir: string;
  /** runc's state root; default `<stateDir>/runc`. Ours alone: sweep() deletes what dead processes left in it. */
  readonly runcRoot?: string;
  /** Default `runc` on a standard PATH. */
  readonly runcPath?: string;
  /** The operator's limits of a step; each missing field is STEP_LIMIT_DEFAULTS' (a run may set its own). */
  readonly limits?: Partial<StepLimits>;
  /** no_new_privs for every step (default off, as in Docker: setuid tools work); a run may turn it on. */
  readonly noNewPrivileges?: boolean;
  /** What the host's cgroups enforce; detected when omitted. */
  readonly cgroups?: CgroupSupport;
  /** The operator's half of the network=host grant; the build's half is `opts.network`. */
  readonly allowHostNetwork?: boolean;
  /** The operator's half of the security.insecure grant (insecure.ts); the build's half is `opts.security`. */
  readonly allowSecurityInsecure?: boolean;
  /** Only for a runtime that leaves `lo` down in a new netns (runc raises it itself): host tools that raise it. */
  readonly loopback?: LoopbackHook;
  /**
   * Root only inside a user namespace (docs/security.md T16); detected when
   * omitted. runc runs rootless: no cgroup of the step's own (so no limit but
   * the timeout, said by `unenforced`), and the spec avoids what the kernel
   * refuses there (spec.ts).
   */
  readonly rootless?: boolean;
}

/** After `runc kill`, how long runc may take to report the exit before we kill runc itself. */
const KILL_GRACE_MS = 1500;
/** Once runc exited, how long its pipes may stay open (a leaked fd) before we stop reading. */
const PIPE_DRAIN_MS = 2000;
const MAX_HOST_RESOLV_BYTES = 64 * 1024;

/** Runs each step in a fresh runc container from a spec we write in full (see spec.ts). */
export class RuncExecutor implements Executor {
  private readonly stateDir: string;
  private readonly bundlesDir: string;
  private readonly runc: RuncCli;
  private readonly limits: StepLimits;
  private readonly noNewPrivileges: boolean;
  readonly rootless: boolean;
  readonly cgroups: CgroupSupport;
  private readonly allowHostNetwork: boolean;
  private readonly allowSecurityInsecure: boolean;
  /** Read from the host on the first insecure step. */
  private insecureGrant?: InsecureGrant;
  private readonly loopback: LoopbackHook | undefined;
  private readonly nofile: number;
  /** setpriv, when the host has it: `runc run` dies with us (see host-tools.ts). */
  private readonly setpriv: string | undefined;
  /** Stops our steps if this process dies (see reaper.ts); undefined without a shell. */
  private readonly reaper: OrphanReaper | undefined;
  private readonly deleting = new Set<Promise<void>>();
  private dirsReady = false;

  constructor(options: RuncExecutorOptions) {
    if (typeof options.stateDir !== 'string' || !path.isAbsolute(options.stateDir)) {
      throw new ExecutorOptionError('stateDir', 'must be an absolute path');
    }
    if (options.runcRoot !== undefined && !path.isAbsolute(options.runcRoot)) {
      throw new ExecutorOptionError('runcRoot', 'must be an absolute path');
    }
    if (options.runcPath !== undefined && (typeof options.runcPath !== 'string' || options.runcPath === '')) {
      throw new ExecutorOptionError('runcPath', 'must be a non-empty string');
    }
    this.stateDir = path.resolve(options.stateDir);
    this.bundlesDir = path.join(this.stateDir, 'bundles');
    this.rootless = options.rootless ?? runsRootless();
    this.runc = new RuncCli(options.runcPath ?? 'runc', path.resolve(options.runcRoot ?? path.join(this.stateDir, 'runc')), this.rootless);
    this.limits = overStepLimits(STEP_LIMIT_DEFAULTS, options.limits, 'limits');
    this.noNewPrivileges = options.noNewPrivileges ?? false;
    this.cgroups = options.cgroups ?? (this.rootless ? rootlessCgroups(detectCgroups()) : detectCgroups());
    this.allowHostNetwork = options.allowHostNetwork ?? false;
    this.allowSecurityInsecure = options.allowSecurityInsecure ?? false;
    this.loopback = options.loopback;
    this.nofile = Math.min(NOFILE, ownNofileHardLimit(this.rootless));
    this.setpriv = findSetpriv();
    const sh = findShell();
    this.reaper = sh ? new OrphanReaper(sh, this.runc, ownPrefix()) : undefined;
  }

  async run(proc: ProcessSpec, opts: ExecOptions): Promise<ExecResult> {
    // Every way a process starts comes through here, so the two-sided grant for
    // host networking is checked once, before anything is set up (docs/security.md T2).
    const network = this.checkNetwork(opts.network);
    const insecure = this.checkSecurity(opts.security);
    const limits = overStepLimits(this.limits, opts.limits, 'limits');
    checkProcess(proc, opts);
    if (opts.signal?.aborted) throw new ExecCancelledError('run cancelled before it started');

    const started = Date.now();
    const id = newContainerId();
    const bundle = path.join(this.bundlesDir, id);
    // A rootfs that is one writable bind of a directory is used in place: runc
    // binds its root onto itself anyway, and a mount plus an umount process
    // (~10-17 ms) per step buy nothing.
    let inPlace = directRootfs(opts.rootfs);
    // A symlink would be followed by runc: only a real directory is used in place.
    if (inPlace !== undefined && !(await lstat(inPlace).catch(() => undefined))?.isDirectory()) inPlace = undefined;
    const rootfs = inPlace ?? path.join(bundle, 'rootfs');
    const stack = new AsyncStack();
    try {
      this.ensureDirs();
      await mkdir(bundle, { mode: 0o700 });
      // With the rootfs used in place nothing is ever mounted in the bundle: a few
      // small files, removed off the step's path (~3 ms on the main thread).
      stack.defer(() => (inPlace !== undefined ? this.inBackground(rm(bundle, { recursive: true, force: true })) : removeBundle(bundle)));
      if (inPlace === undefined) {
        await mkdir(rootfs, { mode: 0o755 });
        for (const m of opts.rootfs) {
          await mountAt(m, rootfs);
          stack.defer(() => unmountAt(rootfs));
        }
      }

      const user = await resolveUser(rootfs, proc.user);
      const cwd = cleanAbs(proc.cwd);
      await mkdirInRoot(rootfs, cwd, user.uid, user.gid);

      const hostname = opts.hostname ?? 'buildkitsandbox';
      const etc = etcFileContents(hostname, network, network === 'host' ? await readHostResolvConf() : '');
      const etcFiles = { hosts: path.join(bundle, 'hosts'), resolvConf: path.join(bundle, 'resolv.conf'), hostname: path.join(bundle, 'hostname') };
      // Bundle files are a few hundred bytes each: written in place, not through the thread pool.
      writeFileSync(etcFiles.hosts, etc.hosts, { mode: 0o644 });
      writeFileSync(etcFiles.resolvConf, etc.resolvConf, { mode: 0o644 });
      writeFileSync(etcFiles.hostname, etc.hostname, { mode: 0o644 });

      const env = [...proc.env, ...Object.entries(opts.secretEnv ?? {}).map(([k, v]) => `${k}=${v}`)];
      const spec = buildSpec({
        args: proc.args,
        env,
        cwd,
        user,
        hostname,
        network,
        limits,
        cgroups: this.cgroups,
        noNewPrivileges: opts.noNewPrivileges ?? this.noNewPrivileges,
        etcFiles,
        mounts: opts.mounts ?? [],
        // Rootless: no cgroup path, so runc may fail to make one without failing the step (nothing asks for a limit).
        ...(this.rootless ? { rootless: true } : { cgroupsPath: cgroupsPathOf(id) }),
        ...(this.loopback ? { loopback: this.loopback } : {}),
        nofile: this.nofile,
      });
      if (insecure) grantInsecure(spec, (this.insecureGrant ??= hostInsecureGrant()));
      if (inPlace !== undefined) spec.root.path = inPlace;
      // Mode 0600: secret env values sit in this file for the life of the step.
      writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec), { mode: 0o600 });

      const stubs = await MountStubs.record(
        rootfs,
        spec.mounts.map((m) => m.destination),
      );
      stack.defer(() => stubs.clean());
      // Registered last, so it runs first: the container is gone before stubs are cleaned and the rootfs unmounted.
      let exitedAlone = false;
      stack.defer(() => (exitedAlone ? this.deleteInBackground(id) : this.runc.forceDelete(id)));

      this.reaper?.ensure();
      const outcome = await this.spawnRun(id, bundle, limits.stepTimeoutMs, opts);
      exitedAlone = !outcome.killed && !outcome.aborted && !outcome.timedOut;
      // Read from the kept container's cgroups before the delete removes them.
      const [oomKilled, pidsLimited] = await Promise.all([readOomKilled(id), readPidsLimited(id)]);
      if (outcome.aborted) throw new ExecCancelledError('run cancelled');
      if (outcome.exitCode !== 0 && !outcome.killed) {
        // runc's own failures (spec, mounts, hooks) are setup errors, not a step's exit status.
        const runcError = await readRuncError(path.join(bundle, 'runc.log'));
        if (runcError !== undefined) throw new SandboxError(`runc could not start the step: ${runcError}`);
      }
      const exitCode = outcome.exitCode;
      const signal = outcome.timedOut || outcome.killed ? 'SIGKILL' : signalOf(exitCode);
      return {
        exitCode,
        ...(signal ? { signal } : {}),
        timedOut: outcome.timedOut,
        oomKilled,
        pidsLimited,
        limits,
        durationMs: Date.now() - started,
      };
    } finally {
      await stack.dispose();
    }
  }

  /** Lines naming each limit of `limits` (default: this executor's) that the host cannot enforce; empty when all hold. */
  unenforced(limits: Partial<StepLimits> = {}): string[] {
    return unenforced(this.cgroups, overStepLimits(this.limits, limits, 'limits'));
  }

  /**
   * When `runc run` returned by itself, every process of the step is gone: the
   * kernel reaps all of a pid namespace before its init can be reaped. What
   * remains is runc's record (its state dir) and an empty cgroup: we remove
   * both ourselves, off the step's path, as `runc delete` would for a stopped
   * container without hooks (we set none), which saves starting runc once
   * more per step (~15 ms of CPU). Should the cgroup still hold a task, it is
   * killed first (removeCgroup); if that fails, `runc delete --force` gets
   * the last word, and what even that leaves the next sweep removes.
   */
  private deleteInBackground(id: string): void {
    this.inBackground(
      (async () => {
        try {
          await removeCgroup(id);
          await rm(path.join(this.runc.root, id), { recursive: true, force: true });
        } catch {
          await this.runc.forceDelete(id);
        }
      })(),
    );
  }

  /** Clean-up that need not hold up a step; drain() waits for it. A failure leaves what the next sweep removes. */
  private inBackground(work: Promise<unknown>): void {
    const p: Promise<void> = work.then(
      () => undefined,
      () => undefined,
    ).finally(() => this.deleting.delete(p));
    this.deleting.add(p);
  }

  /** Wait for the background deletes started so far: after it, no run that had returned by then has a container left. */
  async drain(): Promise<void> {
    await Promise.all([...this.deleting]);
  }

  /** Waits for background deletes, then lets the reaper go: nothing of ours is left for it. */
  async close(): Promise<void> {
    await this.drain();
    this.reaper?.stop();
  }

  /**
   * Kill and delete the containers, cgroups and bundles that dead processes
   * left (docs/security.md T12), never those of a live one; with `ownerless`, also
   * those whose id names no owner. Call at start, before this executor runs anything.
   */
  async sweep(scope: StepSweepScope = { ownerless: true }): Promise<StepSweepReport> {
    await this.drain();
    return sweepDeadSteps(this.runc, this.bundlesDir, scope);
  }

  /** A last line behind the solver's grant check (docs/security.md T2): the operator must have allowed insecure steps. */
  private checkSecurity(mode: ExecOptions['security']): boolean {
    if (mode === undefined) return false;
    if (mode !== 'insecure') throw new ExecutorOptionError('security', `unknown security mode ${JSON.stringify(mode)}`);
    if (!this.allowSecurityInsecure) throw new SandboxPermissionError('security=insecure was requested but the operator has not allowed it (entitlement security.insecure)');
    return true;
  }

  private checkNetwork(mode: ExecOptions['network']): 'none' | 'host' {
    if (mode === 'default' || mode === 'none') return 'none';
    if (mode === 'host') {
      if (!this.allowHostNetwork) {
        throw new SandboxPermissionError('network=host was requested but the operator has not allowed it (entitlement network.host)');
      }
      return 'host';
    }
    throw new ExecutorOptionError('network', `unknown network mode ${JSON.stringify(mode)}`);
  }

  private ensureDirs(): void {
    // Not traversable by other users: bundles hold rootfs mounts with the images' setuid files (docs/security.md T11).
    // Once per executor, unless they went missing (someone emptied the state dir).
    if (this.dirsReady && existsSync(this.bundlesDir) && existsSync(this.runc.root)) return;
    for (const dir of [this.stateDir, this.bundlesDir, this.runc.root]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
    }
    this.dirsReady = true;
  }

  /** `runc run` in the foreground with stdio only; resolves when runc has exited and its pipes drained. */
  private spawnRun(
    id: string,
    bundle: string,
    timeoutMs: number,
    opts: ExecOptions,
  ): Promise<{ exitCode: number; timedOut: boolean; aborted: boolean; killed: boolean }> {
    return new Promise((resolve, reject) => {
      // Aborted while we were mounting: start nothing.
      if (opts.signal?.aborted) {
        resolve({ exitCode: 137, timedOut: false, aborted: true, killed: true });
        return;
      }
      // --keep leaves the stopped container (and its cgroup) so the OOM counter can be read before delete.
      const runcArgs = ['--log', path.join(bundle, 'runc.log'), '--log-format', 'json', ...this.runc.argv('run', '--keep', '--bundle', bundle, id)];
      // The parent-death signal reaches runc even while it is still creating the container, which the reaper cannot see yet.
      const [file, args] = this.setpriv ? [this.setpriv, ['--pdeathsig', 'KILL', '--', this.runc.runcPath, ...runcArgs]] : [this.runc.runcPath, runcArgs];
      const child = builtin('node:child_process').spawn(file, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: RUNC_ENV,
        detached: false,
      });
      let timedOut = false;
      let aborted = false;
      let killing = false;
      let exitCode: number | undefined;
      let settled = false;
      const timers: NodeJS.Timeout[] = [];

      const kill = (): void => {
        if (killing) return;
        killing = true;
        void this.runc.kill(id);
        // runc may still be creating the container (kill finds nothing) or be stuck:
        // kill runc itself; the finally's `runc delete --force` then removes the container.
        timers.push(setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS));
      };
      const onAbort = (): void => {
        aborted = true;
        kill();
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      timers.push(
        setTimeout(() => {
          timedOut = true;
          kill();
        }, timeoutMs),
      );

      child.stdout.on('data', (chunk: Buffer) => opts.onStdout?.(chunk));
      child.stderr.on('data', (chunk: Buffer) => opts.onStderr?.(chunk));

      const finish = (): void => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ exitCode: exitCode ?? 137, timedOut, aborted, killed: killing });
      };
      child.on('error', (err) => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        opts.signal?.removeEventListener('abort', onAbort);
        reject(new SandboxError(`cannot start runc: ${err.message}`, { cause: err }));
      });
      child.on('exit', (code, sig) => {
        exitCode = code ?? (sig ? 128 + (osConstants.signals[sig] ?? 9) : 137);
        // A leaked holder of the pipes must not keep the step alive.
        timers.push(
          setTimeout(() => {
            child.stdout.destroy();
            child.stderr.destroy();
            finish();
          }, PIPE_DRAIN_MS),
        );
      });
      child.on('close', finish);
    });
  }
}

/** mkdir -p inside the rootfs, as the step's user (BuildKit creates a missing cwd owned by the user). */
async function mkdirInRoot(rootfs: string, dir: string, uid: number, gid: number): Promise<void> {
  const parts = dir.split('/').filter((p) => p.length > 0);
  for (let i = 1; i <= parts.length; i++) {
    const host = await resolveInRoot(rootfs, `/${parts.slice(0, i).join('/')}`);
    let st;
    try {
      st = statSync(host);
    } catch {
      st = undefined;
    }
    if (st?.isDirectory()) continue;
    if (st) throw new SandboxError(`working directory ${dir}: /${parts.slice(0, i).join('/')} is not a directory`);
    await mkdir(host, { mode: 0o755 });
    await chown(host, uid, gid);
  }
}

async function readHostResolvConf(): Promise<string> {
  try {
    const text = await readFile('/etc/resolv.conf', 'utf8');
    return text.slice(0, MAX_HOST_RESOLV_BYTES);
  } catch {
    return '';
  }
}

/** The last error runc logged, if any (JSON lines with level and msg). */
async function readRuncError(logFile: string): Promise<string | undefined> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  let last: string | undefined;
  for (const line of text.split('\n')) {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' || entry.level === 'fatal') last = entry.msg ?? line;
    } catch {
      // not a JSON line; runc writes only JSON with --log-format json
    }
  }
  return last?.slice(0, 1000);
}

/** The source directory when the rootfs is exactly one writable bind mount of a directory. */
function directRootfs(rootfs: readonly Mount[]): string | undefined {
  if (rootfs.length !== 1) return undefined;
  const m = rootfs[0]!;
  if (m.type !== 'bind' || !path.isAbsolute(m.source)) return undefined;
  // Only rbind: runc binds the root recursively, so a plain bind (submounts left out) would differ.
  if (!m.options.includes('rbind') || !m.options.every((o) => o === 'rbind' || o === 'rw')) return undefined;
  return path.resolve(m.source);
}

/** 128+N is how runc (and a shell) report a process killed by signal N. */
function signalOf(exitCode: number): string | undefined {
  if (exitCode <= 128 || exitCode > 128 + 64) return undefined;
  const n = exitCode - 128;
  return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0];
}

/**
 * Our own hard RLIMIT_NOFILE: runc can only lower it unless we hold
 * CAP_SYS_RESOURCE (a worker inside a container often does not), and asking
 * for more fails the whole step.
 */
function ownNofileHardLimit(rootless: boolean): number {
  try {
    // CAP_SYS_RESOURCE of a user namespace does not let runc raise a hard limit past the host's.
    if (rootless) return hardNofile();
    const capEff = /^CapEff:\s+([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
    const CAP_SYS_RESOURCE = 24n;
    if (capEff && (BigInt(`0x${capEff[1]}`) >> CAP_SYS_RESOURCE) & 1n) return NOFILE;
    return hardNofile();
  } catch {
    return NOFILE;
  }
}

function hardNofile(): number {
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  if (!m || m[1] === 'unlimited') return NOFILE;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : NOFILE;
}
