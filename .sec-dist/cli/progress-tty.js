import { escapeControl } from '../core/source-excerpt.js';
import { displayLines, FAILURE_TAIL_LINES, formatFailure } from './failure.js';
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
};
const LABEL = { running: 'RUNNING', cached: 'CACHED', done: 'DONE', error: 'ERROR', canceled: 'CANCELED' };
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
    dockerfile;
    out;
    steps = new Map();
    transfers = new Map();
    drawn = 0;
    timer;
    t0 = Date.now();
    footer = [];
    outcome;
    constructor(dockerfile, out = process.stderr) {
        this.dockerfile = dockerfile;
        this.out = out;
        this.timer = setInterval(() => this.draw(false), TTY_DEFAULTS.frameMs);
        this.timer.unref();
    }
    event(ev) {
        switch (ev.type) {
            case 'vertex': {
                const s = this.step(ev.vertex, ev.name);
                if (ev.state === 'started') {
                    s.state = 'running';
                    s.startedAt = ev.at;
                }
                else if (ev.state === 'cached')
                    s.state = 'cached';
                else {
                    s.state = ev.state === 'completed' ? 'done' : 'error';
                    s.endedAt = ev.at;
                    s.startedAt ??= ev.at;
                }
                break;
            }
            case 'log': {
                const s = this.steps.get(ev.vertex);
                if (s)
                    this.addOutput(s, ev.data);
                break;
            }
            case 'progress':
                this.transfers.set(ev.id, { action: ev.action, current: ev.current, ...(ev.total !== undefined ? { total: ev.total } : {}) });
                break;
            case 'warning':
                this.footer.push(`WARNING: ${escapeControl(ev.message)}${ev.range ? ` (${escapeControl(ev.range.file)}:${ev.range.startLine})` : ''}`);
                break;
            case 'result':
                this.outcome = 'FINISHED';
                this.footer.push(`image ${ev.result.imageDigest}${ev.result.pushed.length ? ` pushed to ${ev.result.pushed.join(', ')}` : ''}`);
                break;
            case 'error':
                this.outcome = 'FAILED';
                this.footer.push(this.failure(ev.error));
                break;
        }
    }
    addOutput(s, data) {
        const lines = displayLines(s.partial + data);
        s.partial = data.endsWith('\n') ? '' : (lines.pop() ?? '');
        if (data.endsWith('\n'))
            lines.pop();
        s.tail.push(...lines);
        if (s.tail.length > TTY_DEFAULTS.keepLines)
            s.dropped += s.tail.splice(0, s.tail.length - TTY_DEFAULTS.keepLines).length;
    }
    failure(error) {
        const failed = [...this.steps.values()].find((s) => s.state === 'error');
        if (!failed)
            return formatFailure(this.dockerfile, error);
        const lines = failed.partial ? [...failed.tail, failed.partial] : failed.tail;
        const tail = lines.slice(-FAILURE_TAIL_LINES);
        return formatFailure(this.dockerfile, error, { name: failed.name, tail, omitted: failed.dropped + lines.length - tail.length });
    }
    step(v, name) {
        let s = this.steps.get(v);
        if (!s) {
            s = { n: this.steps.size + 1, name: escapeControl(name), state: 'running', tail: [], partial: '', dropped: 0 };
            this.steps.set(v, s);
        }
        return s;
    }
    stepLine(s, now, width) {
        const t = s.startedAt !== undefined ? secs((s.endedAt ?? now) - s.startedAt) : '';
        const right = ` ${LABEL[s.state].padStart(8)} ${t.padStart(6)}`;
        const left = ` => ${s.name}`;
        return fit(left, width - right.length).padEnd(width - right.length) + right;
    }
    /** The frame: header, steps (with tails while live), transfers. `final` shows every step and nothing transient. */
    render(final) {
        const now = Date.now();
        const width = Math.max(40, this.out.columns ?? TTY_DEFAULTS.columns);
        const steps = [...this.steps.values()];
        const finished = steps.filter((s) => s.state !== 'running').length;
        const status = final ? ` ${this.outcome ?? 'INTERRUPTED'}` : '';
        const header = `[+] Building ${secs(now - this.t0)} (${finished}/${steps.length})${status}`;
        const body = steps.map((s) => {
            const lines = [this.stepLine(s, now, width)];
            if (!final && s.state === 'running') {
                const out = s.partial ? [...s.tail, s.partial] : s.tail;
                for (const l of out.slice(-TTY_DEFAULTS.tailLines))
                    lines.push(fit(` => => ${l}`, width));
            }
            return lines;
        });
        const extra = [];
        if (!final) {
            for (const [id, p] of this.transfers) {
                if (p.total !== undefined && p.current >= p.total)
                    continue;
                const pct = p.total ? ` ${Math.floor((100 * p.current) / p.total)}%` : '';
                extra.push(fit(` => ${p.action} ${escapeControl(id).slice(0, 19)} ${mib(p.current)}${p.total !== undefined ? ` / ${mib(p.total)}` : ''}${pct}`, width));
            }
        }
        if (final)
            return [header, ...body.flat()];
        // Keep the live frame within the screen: fold the oldest finished steps into one line.
        const room = Math.max(3, (this.out.rows ?? TTY_DEFAULTS.rows) - 1 - extra.length - 1);
        let total = body.reduce((n, b) => n + b.length, 0);
        let folded = 0;
        for (let i = 0; i < steps.length && total > room; i++) {
            if (steps[i].state === 'running')
                continue;
            total -= body[i].length;
            body[i] = [];
            folded++;
        }
        const lines = [header];
        if (folded > 0)
            lines.push(` => (${folded} finished step${folded === 1 ? '' : 's'} above)`);
        return [...lines, ...body.flat().slice(-room), ...extra];
    }
    draw(final) {
        const lines = this.render(final);
        let s = this.drawn > 0 ? `\x1b[${this.drawn}A\r` : '';
        for (const l of lines)
            s += `\x1b[2K${l}\n`;
        s += '\x1b[J';
        this.out.write(s);
        this.drawn = final ? 0 : lines.length;
    }
    close() {
        if (this.timer)
            clearInterval(this.timer);
        this.timer = undefined;
        for (const s of this.steps.values()) {
            if (s.state === 'running')
                s.state = this.outcome === 'FINISHED' ? 'done' : 'canceled';
        }
        this.draw(true);
        for (const f of this.footer)
            this.out.write(`${f}\n`);
    }
}
/** Cut to `width` columns; step names and output are single-width text once escaped. */
function fit(s, width) {
    return s.length <= width ? s : `${s.slice(0, Math.max(0, width - 1))}…`;
}
function secs(ms) {
    return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}
function mib(n) {
    return `${(n / (1 << 20)).toFixed(1)}MiB`;
}
//# sourceMappingURL=progress-tty.js.map