import { text } from 'node:stream/consumers';
import { HOST_ENV, readFromHost } from '../../core/host-commands.js';
import { SandboxError } from './errors.js';

/**
 * Short runc commands (list, kill, delete) against one private root. Each gets
 * a bare environment: nothing of ours (tokens, credentials) reaches runc or
 * the hooks it starts.
 */
export const RUNC_ENV: Readonly<Record<string, string>> = { PATH: HOST_ENV['PATH']! };

export class RuncCli {
  constructor(
    readonly runcPath: string,
    readonly root: string,
    /**
     * `--rootless true`: we are root only inside a user namespace (core/userns.ts),
     * so runc makes no cgroups and binds device nodes rather than making them.
     * (runc's own `auto` comes to the same there; the reaper relies on that.)
     */
    readonly rootless = false,
  ) {}

  /** argv for `runc --root <root> ...args`. */
  argv(...args: string[]): string[] {
    return [...(this.rootless ? ['--rootless', 'true'] : []), '--root', this.root, ...args];
  }

  /**
   * One runc command, started by a host-command helper (a fork of Node per
   * `runc delete` was a fifth of a RUN step's own CPU); stdout is its result.
   * The helpers give every command the same bare environment (HOST_ENV).
   */
  async exec(args: string[], timeoutMs = 30_000, urgent = false): Promise<{ stdout: string }> {
    const r = await readFromHost(this.runcPath, this.argv(...args), text, { timeoutMs, urgent });
    if (r.code !== 0 || r.value === undefined) {
      const why = r.timedOut ? `timed out after ${timeoutMs} ms` : r.stderr || `exit status ${r.code}`;
      throw new SandboxError(`runc ${args[0]} failed: ${why.slice(0, 500)}`);
    }
    return { stdout: r.value };
  }

  /** Ids of every container in the root (none when the root does not exist yet). */
  async list(): Promise<string[]> {
    const { stdout } = await this.exec(['list', '--format', 'json']);
    const parsed = JSON.parse(stdout.trim() || 'null') as Array<{ id: string }> | null;
    return (parsed ?? []).map((c) => c.id);
  }

  /** SIGKILL to the container's init; with its own pid namespace, the kernel then kills every process in it. */
  async kill(id: string): Promise<boolean> {
    try {
      // Urgent: a cancel or a timeout must not wait behind other steps' mounts and diffs.
      await this.exec(['kill', id, 'KILL'], 10_000, true);
      return true;
    } catch {
      return false;
    }
  }

  /** Kill and remove the container and its cgroup; a container that is already gone counts as success. */
  async forceDelete(id: string): Promise<void> {
    try {
      await this.exec(['delete', '--force', id], 30_000, true);
    } catch (err) {
      if (/does not exist|not exist|no such/i.test(String((err as Error).message))) return;
      throw err;
    }
  }
}
