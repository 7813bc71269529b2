import type { BuildEvent } from '../core/build.js';
import type { Digest } from '../core/digest.js';
import type { WireError } from '../core/errors.js';
import { escapeControl } from '../core/source-excerpt.js';
import { warningLine } from './warnings.js';
import { displayLines, FAILURE_TAIL_LINES, formatFailure } from './failure.js';
import { attachedLine, type RemoteBuildRef } from './build-ref.js';

type State = 'running' | 'cached' | 'done' | 'error' | 'canceled';

interface Step {
  readonly n: number;
  readonly name: string;
  state: State;
  startedAt?: number;
  endedAt?: number;
  /** Complete output lines kept for display (the last KEEP_LINES). */
  tail: string[];
  /** Output after the last newline. */
  partial: string;
  /** Lines dropped from `tail`. */
  dropped: number;
}

export const TTY_DEFAULTS = {
  /** Output lines shown under a running step (BuildKit shows 6). */
  tailLines: 6,
  /** Redraw at most this often. */
  frameMs: 100,
  /** Output lines kept per step, for the failure report. */
  keepLines: 200,
  /** When the terminal does not say. */
  columns: 120,
  rows: 40,
} as const;

const LABEL: Record<State, string> = { running: 'RUNNING', cached: 'CACHED', done: 'DONE', error: 'ERROR', canceled: 'CANCELED' };

/**
 * A live view like BuildKit's: one line per step with its state and timer,
 * the last lines of output of every running step (parallel stages run side
 * by side, each with its own tail), and byte progress of pulls and pushes.
 * Redraws in place; lines are cut to the terminal's width so a redraw never
 * wraps, and the live frame keeps to its height by folding finished steps.
 * On close it prints the final screen: every step with its state and time,
 * then the result or the failure report.
 */
export class TtyRenderer {
  private readonly steps = new Map<Digest, Step>();
  private readonly transfers = new Map<string, { action: string; current: number; total?: number }>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = Date.now();
  private readonly footer: string[] = [];
  private outcome: 'FINISHED' | 'FAILED' | 'CANCELED' | undefined;
  private remote: string | undefined;
  private readonly notes: string[] = [];
  private closed = false;

  constructor(
    private readonly dockerfile: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.timer = setInterval(() => this.draw(false), TTY_DEFAULTS.frameMs);
    this.timer.unref();
  }

  attached(b: RemoteBuildRef): void {
    // The id in full (people copy it); the re-attach hint would push it off a narrow terminal.
    this.remote = attachedLine(b, false);
  }

  /** Shown under the header while live and kept in the final screen (a write of our own would tear the frame). */
  note(message: string): void {
    this.notes.push(escapeControl(message));
  }

  event(ev: BuildEvent): void {
    switch (ev.type) {
      case 'vertex': {
        const s = this.step(ev.vertex, ev.name);
        if (ev.state === 'started') {
          s.state = 'running';
          s.startedAt = ev.at;
        } else if (ev.state === 'cached') s.state = 'cached';
        else {
          s.state = ev.state === 'completed' ? 'done' : ev.state === 'cancelled' ? 'canceled' : 'error';
          s.endedAt = ev.at;
          s.startedAt ??= ev.at;
        }
        break;
      }
      case 'log': {
        const s = this.steps.get(ev.vertex);
        if (s) this.addOutput(s, ev.data);
        break;
      }
      case 'progress':
        this.transfers.set(ev.id, { action: ev.action, current: ev.current, ...(ev.total !== undefined ? { total: ev.total } : {}) });
        break;
      case 'warning':
        this.footer.push(warningLine(ev));
        break;
      case 'result':
        this.outcome = 'FINISHED';
        this.footer.push(`image ${ev.result.imageDigest}${ev.result.pushed.length ? ` pushed to ${ev.result.pushed.join(', ')}` : ''}`);
        break;
      case 'error':
        if (ev.error.code === 'CANCELLED') {
          // The build was stopped, nothing failed: no step report, as BuildKit shows a cancel.
          this.outcome = 'CANCELED';
          for (const s of this.steps.values()) if (s.state === 'running') s.state = 'canceled';
          this.footer.push(`CANCELED: ${escapeControl(ev.error.message)}`);
          break;
        }
        this.outcome = 'FAILED';
        this.footer.push(this.failure(ev.error));
        break;
    }
  }

  private addOutput(s: Step, data: string): void {
    const lines = displayLines(s.partial + data);
    s.partial = data.endsWith('\n') ? '' : (lines.pop() ?? '');
    if (data.endsWith('\n')) lines.pop();
    s.tail.push(...lines);
    if (s.tail.length > TTY_DEFAULTS.keepLines) s.dropped += s.tail.splice(0, s.tail.length - TTY_DEFAULTS.keepLines).length;
  }

  private failure(error: WireError): string {
    const failed = [...this.steps.values()].find((s) => s.state === 'error');
    if (!failed) return formatFailure(this.dockerfile, error);
    const lines = failed.partial ? [...failed.tail, failed.partial] : failed.tail;
    const tail = lines.slice(-FAILURE_TAIL_LINES);
    return formatFailure(this.dockerfile, error, { name: failed.name, tail, omitted: failed.dropped + lines.length - tail.length });
  }

  private step(v: Digest, name: string): Step {
    let s = this.steps.get(v);
    if (!s) {
      s = { n: this.steps.size + 1, name: escapeControl(name), state: 'running', tail: [], partial: '', dropped: 0 };
      this.steps.set(v, s);
    }
    return s;
  }

  private stepLine(s: Step, now: number, width: number): string {
    const t = s.startedAt !== undefined ? secs((s.endedAt ?? now) - s.startedAt) : '';
    const right = ` ${LABEL[s.state].padStart(8)} ${t.padStart(6)}`;
    const left = ` => ${s.name}`;
    return fit(left, width - right.length).padEnd(width - right.length) + right;
  }

  /** The frame: header, steps (with tails while live), transfers. `final` shows every step and nothing transient. */
  private render(final: boolean): string[] {
    const now = Date.now();
    const width = Math.max(40, this.out.columns ?? TTY_DEFAULTS.columns);
    const steps = [...this.steps.values()];
    const finished = steps.filter((s) => s.state !== 'running').length;
    const status = final ? ` ${this.outcome ?? 'INTERRUPTED'}` : '';
    const header = `[+] Building ${secs(now - this.t0)} (${finished}/${steps.length})${status}`;
    const body: string[][] = steps.map((s) => {
      const lines = [this.stepLine(s, now, width)];
      if (!final && s.state === 'running') {
        const out = s.partial ? [...s.tail, s.partial] : s.tail;
        for (const l of out.slice(-TTY_DEFAULTS.tailLines)) lines.push(fit(` => => ${l}`, width));
      }
      return lines;
    });
    const extra: string[] = [];
    if (!final) {
      for (const [id, p] of this.transfers) {
        if (p.total !== undefined && p.current >= p.total) continue;
        const pct = p.total ? ` ${Math.floor((100 * p.current) / p.total)}%` : '';
        extra.push(fit(` => ${p.action} ${escapeControl(id).slice(0, 19)} ${mib(p.current)}${p.total !== undefined ? ` / ${mib(p.total)}` : ''}${pct}`, width));
      }
    }
    const top = [header, ...[...(this.remote ? [this.remote] : []), ...this.notes].map((l) => fit(` => ${l}`, width))];
    if (final) return [...top, ...body.flat()];
    // Keep the live frame within the screen: fold the oldest finished steps into one line.
    const room = Math.max(3, (this.out.rows ?? TTY_DEFAULTS.rows) - top.length - extra.length - 1);
    let total = body.reduce((n, b) => n + b.length, 0);
    let folded = 0;
    for (let i = 0; i < steps.length && total > room; i++) {
      if (steps[i]!.state === 'running') continue;
      total -= body[i]!.length;
      body[i] = [];
      folded++;
    }
    const lines = [...top];
    if (folded > 0) lines.push(` => (${folded} finished step${folded === 1 ? '' : 's'} above)`);
    return [...lines, ...body.flat().slice(-room), ...extra];
  }

  private draw(final: boolean): void {
    const lines = this.render(final);
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A\r` : '';
    for (const l of lines) s += `\x1b[2K${l}\n`;
    s += '\x1b[J';
    this.out.write(s);
    this.drawn = final ? 0 : lines.length;
  }

  /** Draws the final screen; once (later calls do nothing). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const s of this.steps.values()) {
      if (s.state === 'running') s.state = this.outcome === 'FINISHED' ? 'done' : 'canceled';
    }
    this.draw(true);
    for (const f of this.footer) this.out.write(`${f}\n`);
  }
}

/** Cut to `width` columns; step names and output are single-width text once escaped. */
function fit(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, Math.max(0, width - 1))}…`;
}

function secs(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)}MiB`;
}
