import type { BuildEventBody } from '../core/build.js';
import { escapeControl, formatExcerpt } from '../core/source-excerpt.js';

type WarningEvent = Extract<BuildEventBody, { type: 'warning' }>;

/** One line for progress output: `WARNING: Rule: message (Dockerfile:3)`. */
export function warningLine(w: WarningEvent): string {
  const where = w.range ? ` (${escapeControl(w.range.file)}:${w.range.startLine})` : '';
  return `WARNING: ${w.rule ? `${escapeControl(w.rule)}: ` : ''}${escapeControl(w.message)}${where}`;
}

/**
 * What `build --check` prints for one warning, as BuildKit's `--call check`
 * does: the rule and its documentation, the message, the Dockerfile lines.
 */
export function checkReport(w: WarningEvent, dockerfile: string): string {
  const head = `WARNING: ${escapeControl(w.rule ?? 'warning')}${w.url ? ` - ${escapeControl(w.url)}` : ''}\n${escapeControl(w.message)}`;
  return w.range ? `${head}\n${formatExcerpt(dockerfile, w.range)}` : head;
}
