import type { BuildEvent } from '../core/build.js';
import type { Digest } from '../core/digest.js';
import { escapeControl } from '../core/source-excerpt.js';
import { warningLine } from './warnings.js';
import { attachedLine, type RemoteBuildRef } from './build-ref.js';
import { TtyRenderer } from './progress-tty.js';
import { displayLines, FAILURE_TAIL_LINES, formatFailure } from './failure.js';

export interface Renderer {
  /** The build runs on a build service under this id (before its first event). */
  attached(build: RemoteBuildRef): void;
  event(ev: BuildEvent): void;
  /** A message of the client's own (e.g. that it is cancelling the build), placed where the output mode keeps it readable. */
  note(message: string): void;
  /** Ends the output (the final screen of a tty); calling it again does nothing. */
  close(): void;
}

export type ProgressMode = 'auto' | 'tty' | 'plain' | 'json' | 'quiet';

/** Picks the renderer for --progress; `auto` is tty when stderr (where progress goes) is a terminal, plain otherwise. */
export function createRenderer(mode: ProgressMode, dockerfile: string): Renderer {
  if (mode === 'json') return new JsonRenderer();
  if (mode === 'quiet') return new QuietRenderer(dockerfile);
  if (mode === 'tty' || (mode === 'auto' && process.stderr.isTTY)) return new TtyRenderer(dockerfile);
  return new PlainRenderer(dockerfile);
}

/**
 * One BuildEvent per line on stdout, for programs. A remote build first gets
 * a `{"type":"build","buildId","server"}` line, and every event carries its `buildId`.
 */
class JsonRenderer implements Renderer {
  private buildId: string | undefined;
  attached(b: RemoteBuildRef): void {
    this.buildId = b.buildId;
    process.stdout.write(`${JSON.stringify({ type: 'build', buildId: b.buildId, server: b.server })}\n`);
  }
  event(ev: BuildEvent): void {
    process.stdout.write(`${JSON.stringify(this.buildId ? { ...ev, buildId: this.buildId } : ev)}\n`);
  }
  /** stdout holds events only; the client's own messages go to stderr. */
  note(message: string): void {
    process.stderr.write(`${message}\n`);
  }
  close(): void {}
}

/**
 * Ordered, prefixed lines for CI logs: `#N` per step, like BuildKit's plain
 * output, with step output prefixed by its number. A failure ends with the
 * failing step's last lines, the reason and the Dockerfile excerpt.
 */
class PlainRenderer implements Renderer {
  private readonly doneProgress = new Set<string>();
  private readonly ids = new Map<Digest, number>();
  private readonly names = new Map<Digest, string>();
  private readonly started = new Map<Digest, number>();
  private readonly tails = new Map<Digest, { lines: string[]; dropped: number; partial: string }>();
  private failed: Digest | undefined;
  private readonly t0 = Date.now();
  constructor(
    private readonly dockerfile: string,
    private readonly out: NodeJS.WritableStream = process.stderr,
  ) {}

  private id(v: Digest): number {
    let n = this.ids.get(v);
    if (n === undefined) {
      n = this.ids.size + 1;
      this.ids.set(v, n);
    }
    return n;
  }

  attached(b: RemoteBuildRef): void {
    this.line(attachedLine(b));
  }

  note(message: string): void {
    this.line(message);
  }

  event(ev: BuildEvent): void {
    switch (ev.type) {
      case 'vertex': {
        const n = this.id(ev.vertex);
        const name = escapeControl(ev.name);
        this.names.set(ev.vertex, name);
        if (ev.state === 'started') {
          this.started.set(ev.vertex, ev.at);
          this.line(`#${n} ${name}`);
        } else if (ev.state === 'cached') this.line(`#${n} ${name}\n#${n} CACHED`);
        else if (ev.state === 'completed') this.line(`#${n} DONE ${secs(ev.at - (this.started.get(ev.vertex) ?? ev.at))}`);
        else if (ev.state === 'cancelled') this.line(`#${n} CANCELED`);
        else {
          this.failed ??= ev.vertex;
          this.line(`#${n} ERROR: ${escapeControl(ev.error ?? 'failed')}`);
        }
        break;
      }
      case 'log': {
        const n = this.id(ev.vertex);
        const t = this.tails.get(ev.vertex) ?? { lines: [], dropped: 0, partial: '' };
        this.tails.set(ev.vertex, t);
        // Whole lines only, so output of parallel steps does not interleave mid-line.
        const lines = displayLines(t.partial + ev.data);
        t.partial = ev.data.endsWith('\n') ? '' : (lines.pop() ?? '');
        if (ev.data.endsWith('\n')) lines.pop();
        for (const l of lines) this.line(`#${n} ${l}`);
        t.lines.push(...lines);
        if (t.lines.length > FAILURE_TAIL_LINES) t.dropped += t.lines.splice(0, t.lines.length - FAILURE_TAIL_LINES).length;
        break;
      }
      case 'warning':
        this.line(warningLine(ev));
        break;
      case 'progress': {
        // The client reports a blob's completion more than once (upload, then verify); say it once.
        const doneKey = `${ev.action} ${ev.id}`;
        if (ev.total !== undefined && ev.current >= ev.total && !this.doneProgress.has(doneKey)) {
          this.doneProgress.add(doneKey);
          this.line(`#${ev.action} ${escapeControl(ev.id)} ${mib(ev.total)} done`);
        }
        break;
      }
      case 'result':
        this.flushPartials();
        this.line(`#done image ${ev.result.imageDigest}${ev.result.pushed.length ? ` pushed to ${ev.result.pushed.join(', ')}` : ''} (${secs(Date.now() - this.t0)}, ${ev.result.cache.hits} cached, ${ev.result.cache.misses} run)`);
        break;
      case 'error': {
        this.flushPartials();
        if (ev.error.code === 'CANCELLED') {
          // Nothing failed: no step report, no Dockerfile excerpt.
          this.line(`CANCELED: ${escapeControl(ev.error.message)}`);
          break;
        }
        const f = this.failed;
        const t = f ? this.tails.get(f) : undefined;
        const step = f ? { name: `#${this.id(f)} ${this.names.get(f) ?? ''}`, tail: t?.lines ?? [], omitted: t?.dropped ?? 0 } : undefined;
        this.line(formatFailure(this.dockerfile, ev.error, step));
        break;
      }
    }
  }

  private flushPartials(): void {
    for (const [v, t] of this.tails) {
      if (!t.partial) continue;
      this.line(`#${this.id(v)} ${t.partial}`);
      t.lines.push(t.partial);
      t.partial = '';
    }
  }

  protected line(s: string): void {
    this.out.write(`${s}\n`);
  }

  close(): void {
    this.flushPartials();
  }
}

/** Prints nothing unless the build fails; then the failure report alone. */
class QuietRenderer extends PlainRenderer {
  private quiet = true;
  /** Quiet, but not about what the client itself does (a cancel): those go to stderr. */
  override note(message: string): void {
    process.stderr.write(`${message}\n`);
  }
  override event(ev: BuildEvent): void {
    this.quiet = ev.type !== 'error';
    super.event(ev);
    this.quiet = true;
  }
  protected override line(s: string): void {
    if (!this.quiet) super.line(s);
  }
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)}MiB`;
}
