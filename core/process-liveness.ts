import { readFileSync } from 'node:fs';
import { CodedError } from './errors.js';

/**
 * Whether a process named by pid and start time still counts. A process that
 * was sent SIGKILL can stay in /proc for a while (tearing down a large address
 * space, stuck in I/O, or a zombie its parent has not reaped) with the same
 * start time; it will never run its own code again, so it owns nothing any
 * more. `dying` means it is on its way out and may still be finishing a
 * system call: callers that reclaim what it held wait a bounded time for
 * `gone` first.
 */
export type Liveness = 'live' | 'dying' | 'gone';

/** The fields of /proc/PID/stat that liveness needs. */
export interface ProcStat {
  /** Field 3: R, S, D, T, t, Z, X, I, … */
  readonly state: string;
  /** Field 9: the kernel's PF_* flags. */
  readonly flags: number;
  /** Field 22: clock ticks since boot; tells a process from a later one with a recycled pid. */
  readonly startTime: string;
}

/** PF_EXITING in include/linux/sched.h: set as the process enters do_exit. */
const PF_EXITING = 0x4;
/** SIGKILL is signal 9: bit 8 of the SigPnd/ShdPnd masks in /proc/PID/status. */
const SIGKILL_BIT = 1n << 8n;

/** How often a wait for a dying process looks again. */
const POLL_MS = 20;

export function parseProcStat(text: string): ProcStat | undefined {
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(' ');
  const [state, flags, startTime] = [fields[0], Number(fields[6]), fields[19]];
  if (!state || !Number.isSafeInteger(flags) || !startTime) return undefined;
  return { state, flags, startTime };
}

/** SIGKILL queued for the process (shared) or its main thread, in /proc/PID/status text. */
export function hasPendingKill(status: string): boolean {
  for (const m of status.matchAll(/^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)\s*$/gm)) {
    if ((BigInt(`0x${m[1]}`) & SIGKILL_BIT) !== 0n) return true;
  }
  return false;
}

/**
 * The rules, on text read from /proc: no stat or another start time is
 * `gone` (exited, or the pid now names someone else); a zombie or dead task
 * is `gone` (it holds no files, mounts or children of its own and runs
 * nothing); exiting or with SIGKILL pending is `dying`; anything else `live`.
 */
export function livenessOf(stat: ProcStat | undefined, startTime: string, status: string | undefined): Liveness {
  if (!stat || stat.startTime !== startTime) return 'gone';
  if (stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return 'gone';
  if ((stat.flags & PF_EXITING) !== 0) return 'dying';
  if (status !== undefined && hasPendingKill(status)) return 'dying';
  return 'live';
}

export function processLiveness(pid: number, startTime: string): Liveness {
  if (!Number.isSafeInteger(pid) || pid <= 0) return 'gone';
  const stat = readProc(pid, 'stat');
  const parsed = stat === undefined ? undefined : parseProcStat(stat);
  // status only matters for a process that is otherwise live: read it then only.
  const first = livenessOf(parsed, startTime, undefined);
  if (first !== 'live') return first;
  return livenessOf(parsed, startTime, readProc(pid, 'status') ?? '');
}

/** Start time of `pid` (field 22 of its stat), or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  const stat = readProc(pid, 'stat');
  return stat === undefined ? undefined : parseProcStat(stat)?.startTime;
}

/** Waits while the process is dying, at most `timeoutMs`; returns how it was found last. */
export async function waitWhileDying(pid: number, startTime: string, timeoutMs: number): Promise<Liveness> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = processLiveness(pid, startTime);
    if (state !== 'dying' || Date.now() >= deadline) return state;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** This process's tag, read once. */
let ownTag: string | undefined;

/**
 * `<pid>-<starttime>` of a process: what names this process as the owner of
 * things it makes under a state root (root-use records, container ids), so
 * another process can tell whether their owner still lives.
 */
export function ownerTag(pid = process.pid): string {
  if (pid === process.pid && ownTag !== undefined) return ownTag;
  const start = processStartTime(pid);
  if (start === undefined) throw new CodedError('INTERNAL', `cannot read the start time of process ${pid} from /proc/${pid}/stat`);
  const tag = `${pid}-${start}`;
  if (pid === process.pid) ownTag = tag;
  return tag;
}

/** Liveness of the owner a tag names; a malformed tag names no one (`gone`). */
export function ownerLiveness(tag: string): Liveness {
  const m = /^(\d+)-(\d+)$/.exec(tag);
  return m ? processLiveness(Number(m[1]), m[2]!) : 'gone';
}

function readProc(pid: number, file: 'stat' | 'status'): string | undefined {
  try {
    // Read in place: a few hundred bytes that procfs generates on read.
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}
