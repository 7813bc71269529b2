import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { BuildEventBody } from '../../core/build.js';
import type { Digest } from '../../core/digest.js';
import { limitPhrase } from '../../core/limit-error.js';
import { BUILD_LIMIT_DEFAULTS } from '../../core/limits.js';
import { StepLogFile } from './log-file.js';

export const LOG_DEFAULTS = {
  // 4 MiB in the event stream: BuildKit clips at 2 MiB by default; users asked for more, not less.
  eventCap: 4 * 1024 * 1024,
  // Logs of builds older than this are removed when a later build starts writing logs.
  maxAgeMs: 7 * 24 * 3600 * 1000,
} as const;

export interface LogFileOptions {
  /** `<root>/logs`: every build gets `<dir>/<build-id>/<vertex>.log`. */
  readonly dir: string;
  /** Same key for every step of one build (the build's emit function), so they share one build directory. */
  readonly build: object;
  /** The step log limit: past it the file keeps its first and last parts (default BUILD_LIMIT_DEFAULTS.maxStepLogBytes). */
  readonly fileCap?: number;
}

/**
 * Step output into log events and into a file. The event stream carries at
 * most `cap` bytes per step and then says once where the full log is, so one
 * chatty step cannot flood a terminal, Redis or memory, and nothing is lost
 * silently. Secret values are masked in both.
 */
export class LogSink {
  private sent = 0;
  private clipped = false;
  private readonly secrets: string[];
  private file: StepLogFile | undefined;
  private filePath: string | undefined;
  private readonly longestSecret: number;
  private readonly streams: Partial<Record<'stdout' | 'stderr', { decoder: StringDecoder; pending: string }>> = {};

  constructor(
    private readonly vertex: Digest,
    private readonly emit: (e: BuildEventBody) => void,
    secrets: readonly Buffer[],
    private readonly cap: number = LOG_DEFAULTS.eventCap,
    private readonly fileOpts?: LogFileOptions,
  ) {
    this.secrets = secrets.map((s) => s.toString('utf8')).filter((s) => s.length >= 4);
    this.longestSecret = Math.max(0, ...this.secrets.map((s) => s.length));
  }

  /** Where the full log of this step is (or will be once it prints something). */
  get logPath(): string | undefined {
    if (!this.fileOpts) return undefined;
    this.filePath ??= path.join(buildLogDir(this.fileOpts.dir, this.fileOpts.build), `${this.vertex.replace(':', '-')}.log`);
    return this.filePath;
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const data = this.mask(stream, chunk, false);
    if (data.length > 0) this.publish(stream, data, chunk.length);
  }

  /**
   * Decode (a UTF-8 character may straddle two chunks) and mask secrets. A
   * secret may straddle chunks too, so the last `longest - 1` characters wait
   * for the next chunk (or the end) before they are shown.
   */
  private mask(stream: 'stdout' | 'stderr', chunk: Buffer | undefined, final: boolean): string {
    const st = (this.streams[stream] ??= { decoder: new StringDecoder('utf8'), pending: '' });
    let text = st.pending + (chunk ? st.decoder.write(chunk) : st.decoder.end());
    for (const s of this.secrets) text = text.split(s).join('****');
    const hold = final ? 0 : Math.min(text.length, this.longestSecret - 1);
    st.pending = hold > 0 ? text.slice(text.length - hold) : '';
    return hold > 0 ? text.slice(0, text.length - hold) : text;
  }

  private publish(stream: 'stdout' | 'stderr', data: string, rawBytes: number): void {
    this.toFile(data);
    if (this.clipped) return;
    if (this.sent + rawBytes > this.cap) {
      this.clipped = true;
      const where = this.logPath ? `; the full log is in ${this.logPath}` : '';
      this.emit({ type: 'log', vertex: this.vertex, stream: 'stderr', data: `\n[output clipped: this step printed more than ${mib(this.cap)} to the build log${where}]\n` });
      return;
    }
    this.sent += rawBytes;
    this.emit({ type: 'log', vertex: this.vertex, stream, data });
  }

  private toFile(data: string): void {
    if (!this.fileOpts) return;
    const cap = this.fileOpts.fileCap ?? BUILD_LIMIT_DEFAULTS.maxStepLogBytes;
    this.file ??= new StepLogFile(this.logPath!, cap);
    if (this.file.write(Buffer.from(data))) {
      // Once, past the event cap too: whoever reads the log later must know it is not whole.
      this.emit({ type: 'log', vertex: this.vertex, stream: 'stderr', data: `\n[the full log of this step passed ${limitPhrase('maxStepLogBytes', cap)}: it keeps the first and last parts, and says where bytes were dropped]\n` });
    }
  }

  end(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (!this.streams[stream]) continue;
      const rest = this.mask(stream, undefined, true);
      if (rest.length > 0) this.publish(stream, rest, Buffer.byteLength(rest));
    }
    this.file?.close();
  }
}

function mib(n: number): string {
  return `${Math.round(n / (1024 * 1024))} MiB`;
}

const buildDirs = new WeakMap<object, string>();
const swept = new Set<string>();

/** One directory per build, named by time so `ls` sorts them; old ones are removed the first time a process writes logs. */
function buildLogDir(dir: string, build: object): string {
  let d = buildDirs.get(build);
  if (!d) {
    d = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`);
    buildDirs.set(build, d);
    if (!swept.has(dir)) {
      swept.add(dir);
      sweepOldLogs(dir, Date.now() - LOG_DEFAULTS.maxAgeMs);
    }
  }
  return d;
}

function sweepOldLogs(dir: string, before: number): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    try {
      if (statSync(p).mtimeMs < before) rmSync(p, { recursive: true, force: true });
    } catch {
      // Another process may be removing it too.
    }
  }
}
