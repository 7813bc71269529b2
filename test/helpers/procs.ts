import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ownerTag, parseProcStat, processStartTime } from '../../core/process-liveness.js';

/** Processes for liveness tests; `killAll()` in afterEach stops what a test left running. */
export class TestProcs {
  private readonly started: ChildProcess[] = [];

  /** `sleep 30`, once it is in /proc. */
  async sleeper(): Promise<ChildProcess> {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    this.started.push(child);
    await until('sleep started', () => processStartTime(child.pid!) !== undefined);
    return child;
  }

  /** The owner tag (pid and start time) of a process that lived and was killed: what a crashed user leaves. */
  async deadTag(): Promise<string> {
    const child = await this.sleeper();
    const tag = ownerTag(child.pid!);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    return tag;
  }

  /** Pid of a zombie: a child that exited under a parent (`sleep`) that never waits for it. */
  async zombie(): Promise<number> {
    // The child exits only when told, after its shell has become `sleep`: a shell would reap it.
    const parent = spawn('sh', ['-c', 'exec 3<&0; (read -r x <&3) & echo $!; exec sleep 30 3<&- </dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
    this.started.push(parent);
    const pid = Number(await new Promise<string>((r) => parent.stdout!.once('data', (b: Buffer) => r(b.toString().trim()))));
    await until('the shell became sleep', () => commOf(parent.pid!) === 'sleep');
    parent.stdin!.end('exit\n');
    await until('the child is a zombie', () => stateOf(pid) === 'Z');
    return pid;
  }

  async killAll(): Promise<void> {
    for (const c of this.started.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    }
  }
}

function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Field 3 of /proc/PID/stat, or undefined when there is no such process. */
export function stateOf(pid: number): string | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state;
  } catch {
    return undefined;
  }
}

export async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
