import type { BuildEvent } from '../core/build.js';
import type { Digest } from '../core/digest.js';
import { escapeControl, formatExcerpt } from '../core/source-excerpt.js';

interface Step {
  readonly n: number;
  name: string;
  state: 'waiting' | 'running' | 'cached' | 'done' | 'error';
  startedAt?: number;
  endedAt?: number;
  tail: string[];
  error?: string;
}

/** Lines of output shown under a running step (BuildKit shows 6). */
const TAIL_LINES = 6;
const FRAME_MS = 100;

/**
 * A live view like BuildKit's: one line per step with its state and timer,
 * CACHED markers, and the last lines of output of the steps that are running
 * (parallel stages show side by side as several running steps). Redraws in
 * place with ANSI cursor movement at most every FRAME_MS.
 */
export class TtyRenderer {
  private readonly steps = new Map<Digest, Step>();
  private readonly progress = new Map<string, { action: string; current: number; total?: number }>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = Date.now();
  private footer: string[] = [];

  constructor(private readonly dockerfile: string, private readonly out: NodeJS.WriteStream = process.stderr) {
    this.timer = setInterval(() => this.draw(), FRAME_MS);
    this.timer.unref();
  }

  event(ev: BuildEvent): void {
    switch (ev.type) {
      case 'vertex': {
        const s = this.step(ev.vertex, ev.name);
        if (ev.state === 'started') {
          s.state = 'running';
          s.startedAt = ev.at;
        } else if (ev.state === 'cached') s.state = 'cached';
        else if (ev.state === 'completed') {
          s.state = 'done';
          s.endedAt = ev.at;
        } else {
          s.state = 'error';
          s.endedAt = ev.at;
          if (ev.error) s.error = ev.error;
        }
        break;
      }
      case 'log': {
        const s = this.steps.get(ev.vertex);
        if (!s) break;
        s.tail.push(...ev.data.split('\n').filter((l) => l.length > 0).map(escapeControl));
        if (s.tail.length > 200) s.tail.splice(0, s.tail.length - 200);
        break;
      }
      case 'progress':
        this.progress.set(ev.id, { action: ev.action, current: ev.current, ...(ev.total !== undefined ? { total: ev.total } : {}) });
        break;
      case 'warning':
        this.footer.push(`WARNING: ${escapeControl(ev.message)}`);
        break;
      case 'result':
        this.footer.push(`image ${ev.result.imageDigest}${ev.result.pushed.length ? ` pushed to ${ev.result.pushed.join(', ')}` : ''}`);
        break;
      case 'error': {
        const failed = [...this.steps.values()].find((s) => s.state === 'error');
        if (failed) this.footer.push(`------\n > ${failed.name}:\n${failed.tail.slice(-20).map((l) => `${l}`).join('\n')}\n------`);
        this.footer.push(`ERROR: ${escapeControl(ev.error.message)}`);
        if (ev.error.range) this.footer.push(formatExcerpt(this.dockerfile, ev.error.range));
        break;
      }
    }
  }

  private step(v: Digest, name: string): Step {
    let s = this.steps.get(v);
    if (!s) {
      s = { n: this.steps.size + 1, name: escapeControl(name), state: 'waiting', tail: [] };
      this.steps.set(v, s);
    }
    return s;
  }

  private render(): string[] {
    const now = Date.now();
    const lines = [`[+] Building ${secs(now - this.t0)}`];
    for (const s of this.steps.values()) {
      const t = s.startedAt ? secs((s.endedAt ?? now) - s.startedAt) : '';
      const mark = s.state === 'cached' ? 'CACHED' : s.state === 'error' ? 'ERROR' : s.state === 'done' ? 'DONE' : s.state === 'running' ? 'RUNNING' : '';
      lines.push(` => ${s.name.padEnd(50)} ${mark.padStart(7)} ${t.padStart(6)}`);
      if (s.state === 'running') for (const l of s.tail.slice(-TAIL_LINES)) lines.push(` => => ${l.slice(0, 120)}`);
    }
    for (const [id, p] of this.progress) {
      if (p.total !== undefined && p.current >= p.total) continue;
      lines.push(` => ${p.action} ${id.slice(0, 19)} ${mib(p.current)}${p.total !== undefined ? ` / ${mib(p.total)}` : ''}`);
    }
    return lines;
  }

  private draw(): void {
    const lines = this.render();
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const l of lines) s += `\x1b[2K${l}\n`;
    this.out.write(s);
    this.drawn = lines.length;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.draw();
    for (const f of this.footer) this.out.write(`${f}\n`);
  }
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)}MiB`;
}
