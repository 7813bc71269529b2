import type { WireError } from '../core/errors.js';
import { formatLimit, LIMIT_SPECS, type LimitName } from '../core/limits.js';
import { escapeControl, formatExcerpt } from '../core/source-excerpt.js';

/** The failing step as a renderer saw it. */
export interface FailedStep {
  readonly name: string;
  /** Its last output lines, already escaped. */
  readonly tail: readonly string[];
  /** Lines printed before `tail` that are not repeated here (they are in the log above or the step's log file). */
  readonly omitted: number;
}

/** Lines of the failing step's output repeated under the error (BuildKit repeats about as many). */
export const FAILURE_TAIL_LINES = 20;

/**
 * What a failed build ends with, in every progress mode: the failing step's
 * last output, the error with its reason (exit code, signal, timeout, OOM),
 * and the Dockerfile excerpt with the failing line marked.
 */
export function formatFailure(dockerfile: string, error: WireError, step?: FailedStep): string {
  const out: string[] = [];
  if (step) {
    out.push('------', ` > ${step.name}:`);
    if (step.omitted > 0) out.push(`   (${step.omitted} earlier line${step.omitted === 1 ? '' : 's'} not repeated here)`);
    for (const l of step.tail) out.push(l);
    out.push('------');
  }
  const hint = typeof error.details?.['suggestion'] === 'string' ? ` (did you mean ${error.details['suggestion']}?)` : '';
  out.push(`ERROR: ${escapeControl(error.message)}${escapeControl(hint)}`);
  const reason = reasonOf(error);
  if (reason) out.push(`reason: ${reason}`);
  if (error.range) out.push(formatExcerpt(dockerfile, error.range));
  return out.join('\n');
}

/** The machine-readable half of an exec failure, in words. */
export function reasonOf(error: WireError): string | undefined {
  const d = error.details;
  if (!d) return undefined;
  const limit = d['limit'];
  if (typeof limit === 'string' && Object.hasOwn(LIMIT_SPECS, limit) && typeof d['value'] === 'number') {
    const name = limit as LimitName;
    return `limit ${LIMIT_SPECS[name].key} = ${formatLimit(name, d['value'])} (${LIMIT_SPECS[name].what})`;
  }
  if (d['timedOut'] === true) return 'timeout (the step ran past its time limit and was killed)';
  if (d['oomKilled'] === true) return 'out of memory (the step hit its memory limit and was killed)';
  if (typeof d['signal'] === 'string') return `killed by signal ${d['signal']}`;
  if (typeof d['exitCode'] === 'number') return `exit code ${d['exitCode']}`;
  return undefined;
}

/** Splits step output into display lines: `\r` progress redraws keep their last state; control characters escaped. */
export function displayLines(text: string): string[] {
  return text.split('\n').map((l) => {
    const parts = l.split('\r').filter((p) => p.length > 0);
    return escapeControl((parts[parts.length - 1] ?? '').replace(/\t/g, '    '));
  });
}
