import type { SourceRange } from './errors.js';
import { redactUrlCredentials } from './redact.js';

/**
 * The lines of `text` around `range`, numbered, the range's lines marked with
 * `>>>`, as BuildKit prints a failing Dockerfile step. Control characters are
 * escaped: the text may come from an untrusted Dockerfile and lands on a terminal.
 */
export function formatExcerpt(text: string, range: SourceRange, context = 2): string {
  const lines = text.split('\n');
  const from = Math.max(1, range.startLine - context);
  const to = Math.min(lines.length, range.endLine + context);
  const width = String(to).length;
  const out: string[] = [];
  for (let n = from; n <= to; n++) {
    const mark = n >= range.startLine && n <= range.endLine ? '>>>' : '   ';
    // The excerpt is printed: a URL's password in the Dockerfile stays out of it.
    out.push(` ${String(n).padStart(width)} | ${mark} ${escapeControl(redactUrlCredentials(lines[n - 1] ?? ''))}`);
  }
  return `${range.file}:${range.startLine}\n${'-'.repeat(24)}\n${out.join('\n')}\n${'-'.repeat(24)}`;
}

export function escapeControl(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f\x9b]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
