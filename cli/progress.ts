import type { BuildEvent } from '../core/build.js';
import type { Digest } from '../core/digest.js';
import { escapeControl, formatExcerpt } from '../core/source-excerpt.js';
import { TtyRenderer } from './progress-tty.js';

export interface Renderer {
  event(ev: BuildEvent): void;
  close(): void;
}

/** Picks the renderer for --progress; `auto` is tty on a terminal, plain otherwise. */
export function createRenderer(mode: 'auto' | 'tty' | 'plain' | 'json' | 'quiet', dockerfile: string): Renderer {
  if (mode === 'json') return new JsonRenderer();
  if (mode === 'quiet') return new QuietRenderer(dockerfile);
  if (mode === 'tty' || (mode === 'auto' && process.stderr.isTTY)) return new TtyRenderer(dockerfile);
  return new PlainRenderer(dockerfile);
}

class JsonRenderer implements Renderer {
  event(ev: BuildEvent): void {
    process.stdout.write(`${JSON.stringify(ev)}\n`);
  }
  close(): void {}
}

/**
 * Ordered, prefixed lines for CI logs: `#N` per step, like BuildKit's plain
 * output, with step output prefixed by its number. Errors end with the
 * Dockerfile excerpt and the reason.
 */
class PlainRenderer implements Renderer {
  private readonly ids = new Map<Digest, number>();
  private readonly started = new Map<Digest, number>();
  private readonly t0 = Date.now();
  constructor(private readonly dockerfile: string, private readonly out: NodeJS.WritableStream = process.stderr) {}

  private id(v: Digest): number {
    let n = this.ids.get(v);
    if (n === undefined) {
      n = this.ids.size + 1;
      this.ids.set(v, n);
    }
    return n;
  }

  event(ev: BuildEvent): void {
    switch (ev.type) {
      case 'vertex': {
        const n = this.id(ev.vertex);
        const name = escapeControl(ev.name);
        if (ev.state === 'started') {
          this.started.set(ev.vertex, ev.at);
          this.line(`#${n} ${name}`);
        } else if (ev.state === 'cached') this.line(`#${n} ${name}\n#${n} CACHED`);
        else if (ev.state === 'completed') this.line(`#${n} DONE ${secs(ev.at - (this.started.get(ev.vertex) ?? ev.at))}`);
        else this.line(`#${n} ERROR: ${escapeControl(ev.error ?? 'failed')}`);
        break;
      }
      case 'log': {
        const n = this.id(ev.vertex);
        const text = ev.data.endsWith('\n') ? ev.data.slice(0, -1) : ev.data;
        for (const l of text.split('\n')) this.line(`#${n} ${escapeControl(l)}`);
        break;
      }
      case 'warning':
        this.line(`WARNING: ${escapeControl(ev.message)}${ev.range ? ` (${ev.range.file}:${ev.range.startLine})` : ''}`);
        break;
      case 'progress':
        break;
      case 'result':
        this.line(`#done image ${ev.result.imageDigest}${ev.result.pushed.length ? ` pushed to ${ev.result.pushed.join(', ')}` : ''} (${secs(Date.now() - this.t0)}, ${ev.result.cache.hits} cached, ${ev.result.cache.misses} run)`);
        break;
      case 'error':
        this.line(`ERROR: ${escapeControl(ev.error.message)}`);
        if (ev.error.range) this.line(formatExcerpt(this.dockerfile, ev.error.range));
        break;
    }
  }

  private line(s: string): void {
    this.out.write(`${s}\n`);
  }

  close(): void {}
}

class QuietRenderer extends PlainRenderer {
  private readonly buffered: BuildEvent[] = [];
  override event(ev: BuildEvent): void {
    // Quiet prints nothing unless the build fails; then the failing step's output and the error.
    if (ev.type === 'log' || ev.type === 'error' || (ev.type === 'vertex' && ev.state === 'errored')) this.buffered.push(ev);
    if (ev.type === 'error') for (const b of this.buffered) super.event(b);
  }
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
