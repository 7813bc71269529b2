import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type { BuildEventBody } from '../core/build.js';
import type { ServiceStore } from '../store/index.js';
import { logsCommand, type StepLogRef } from './step-log-ref.js';

/** Prefix of per-build log spool dirs under `<root>/tmp` (swept at start like context dirs). */
export const LOG_SPOOL_PREFIX = 'logs-';

export const STEP_LOG_DEFAULTS = {
  // The floor of what a stored log may be; a worker with a larger --max-step-log-size raises it to fit.
  maxBytes: 256 << 20,
} as const;

type LogEvent = Extract<BuildEventBody, { type: 'log' }>;

/**
 * The builder clips a step's output in the event stream and says where its
 * log file is on this machine (builder/solver/log-sink.ts). That path means
 * nothing to a remote client, so the marker is rewritten into the command
 * that fetches the log through the API.
 */
const CLIP_MARKER = /^(\n?\[output clipped: [^\n]*?); the full log is in ([^\n]+)\](\n?)$/;

/**
 * Full step logs of one build on a worker. Every log event is spooled per
 * step to a private file while it passes; for a step the builder clipped, its
 * own log file (which has everything) replaces the spool. At the end each
 * step's log goes to the service store, and `<prefix>:logs:<build>` maps the
 * step to its blob, which the API's GetLog streams.
 */
export class StepLogs {
  private readonly spools = new Map<string, WriteStream>();
  private readonly builderFiles = new Map<string, string>();

  private constructor(
    private readonly dir: string,
    private readonly buildId: string,
    private readonly builderLogs: string,
  ) {}

  /** `builderLogs` is `<root>/logs`: a clip marker naming a file outside it is not trusted. */
  static async create(tmpRoot: string, buildId: string, builderLogs: string): Promise<StepLogs> {
    await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
    return new StepLogs(await mkdtemp(path.join(tmpRoot, LOG_SPOOL_PREFIX)), buildId, path.resolve(builderLogs));
  }

  /** Spools a log event; returns what the event stream should carry instead. */
  take(ev: LogEvent): LogEvent {
    const m = ev.stream === 'stderr' ? CLIP_MARKER.exec(ev.data) : null;
    if (m) {
      const file = path.resolve(m[2]!);
      if (file.startsWith(`${this.builderLogs}${path.sep}`)) this.builderFiles.set(ev.vertex, file);
      return { ...ev, data: `${m[1]}; the full log: ${logsCommand(this.buildId, ev.vertex)}]${m[3]}` };
    }
    let spool = this.spools.get(ev.vertex);
    if (!spool) {
      spool = createWriteStream(path.join(this.dir, `${ev.vertex.replace(':', '-')}.log`), { mode: 0o600 });
      // A full disk must not fail the build: the stored log is then shorter, the stream is whole.
      spool.on('error', () => undefined);
      this.spools.set(ev.vertex, spool);
    }
    spool.write(ev.data);
    return ev;
  }

  get steps(): number {
    return this.spools.size + [...this.builderFiles.keys()].filter((v) => !this.spools.has(v)).length;
  }

  /** Stores every step's full log; returns vertex → blob. A step whose log cannot be stored is skipped and named in `failed`. */
  async store(store: ServiceStore, opts: { signal?: AbortSignal; maxBytes?: number } = {}): Promise<{ stored: Map<string, StepLogRef>; failed: string[] }> {
    const { signal } = opts;
    // A log kept under the worker's --max-step-log-size (head and tail, plus the marker) must fit.
    const maxBytes = Math.max(STEP_LOG_DEFAULTS.maxBytes, opts.maxBytes ?? 0);
    await Promise.all([...this.spools.values()].map((s) => (s.end(), finished(s).catch(() => undefined))));
    const stored = new Map<string, StepLogRef>();
    const failed: string[] = [];
    const vertices = new Set([...this.spools.keys(), ...this.builderFiles.keys()]);
    for (const vertex of vertices) {
      signal?.throwIfAborted();
      const builderFile = this.builderFiles.get(vertex);
      const file = builderFile && (await stat(builderFile).catch(() => undefined)) ? builderFile : path.join(this.dir, `${vertex.replace(':', '-')}.log`);
      const up = await store.ingest('log', maxBytes);
      try {
        for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) await up.write(chunk);
        stored.set(vertex, await up.commit());
      } catch {
        await up.abort();
        failed.push(vertex);
      }
    }
    return { stored, failed };
  }

  async remove(): Promise<void> {
    for (const s of this.spools.values()) s.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }
}
