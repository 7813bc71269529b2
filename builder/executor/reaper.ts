import type { ChildProcess } from 'node:child_process';
import { RUNC_ENV, type RuncCli } from './runc-cli.js';
import { builtin } from '../../core/lazy-builtins.js';

/**
 * runc makes each container its own session and pid namespace: when the
 * process that ran `runc run` dies (SIGKILL, OOM, a CI runner killing the
 * job's process group), the step keeps running, and killing `runc run` does
 * not stop it. The reaper is a small shell, one per executor, started with the
 * first step in a session of its own (so a kill of our process group does not
 * reach it), that reads a pipe from us. `close()` writes `done` and it exits.
 * End of file without `done` means we died: it waits (5 s at most) until it
 * has been reparented (our exit is then complete, and every `runc run` we started got
 * its parent-death SIGKILL from setpriv), then force-deletes every container
 * whose id carries our owner prefix: SIGKILL to the container's init takes
 * the whole pid namespace with it, stopped processes included, and runc
 * removes the cgroup. Mounts and bundles stay for the next sweep.
 *
 * It costs one fork of `sh` per executor (~2 ms, once), nothing per step.
 */
const SCRIPT = [
  'IFS= read -r line',
  '[ "$line" = done ] && exit 0',
  // Closed without `done` while our parent still lives is a bug of ours, not a death: touch nothing.
  'n=0',
  'while read -r _ _ _ ppid _ < /proc/$$/stat && [ "$ppid" = "$PPID" ]; do',
  '  n=$((n+1)); [ "$n" -gt 250 ] && exit 0',
  '  sleep 0.02',
  'done',
  'for dir in "$2/$3"*; do',
  '  [ -d "$dir" ] && "$1" --root "$2" delete --force "${dir##*/}"',
  'done',
  'exit 0',
].join('\n');

export class OrphanReaper {
  private child: ChildProcess | undefined;

  constructor(
    private readonly sh: string,
    private readonly runc: RuncCli,
    /** Ids of our containers start with this (see container-ids.ts). */
    private readonly prefix: string,
  ) {}

  /** Starts the reaper unless it runs; called before each step, so one that was killed is replaced. */
  ensure(): void {
    if (this.child) return;
    const child = builtin('node:child_process').spawn(this.sh, ['-c', SCRIPT, 'buildlite-reaper', this.runc.runcPath, this.runc.root, this.prefix], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
      // Not in the state root: a cwd there would keep it busy.
      cwd: '/',
      env: RUNC_ENV,
    });
    const forget = () => {
      if (this.child === child) this.child = undefined;
    };
    child.once('error', forget);
    child.once('exit', forget);
    child.stdin!.on('error', () => undefined);
    // It must not keep this process alive; its pipe closing at our exit is its whole point.
    child.unref();
    this.child = child;
  }

  /** We are closing on purpose and our steps are gone: the reaper exits without touching anything. */
  stop(): void {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.stdin!.end('done\n');
  }
}
