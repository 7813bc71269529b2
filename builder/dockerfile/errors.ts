import { BuildliteError, type SourceRange } from '../../core/errors.js';
import { formatExcerpt } from '../../core/source-excerpt.js';

/**
 * Anything wrong with a Dockerfile: syntax, a bad flag value, a stage that
 * does not exist. Inner helpers throw it without a range; the converter attaches
 * the instruction's range once (core/errors.ts `withLocation`).
 */
export class DockerfileError extends BuildliteError {
  readonly code = 'DOCKERFILE' as const;
  /** The bare reason, without the location prefix the message may gain. */
  readonly reason: string;
  /** A "did you mean" hint, when one makes sense. */
  readonly suggestion?: string;

  constructor(reason: string, options?: { cause?: unknown; range?: SourceRange; suggestion?: string }) {
    super(reason, options);
    this.reason = reason;
    if (options?.suggestion) this.suggestion = options.suggestion;
  }

  override details(): Record<string, string | number | boolean> {
    const d: Record<string, string | number | boolean> = {};
    if (this.range) {
      d.file = this.range.file;
      d.line = this.range.startLine;
      if (this.range.startColumn !== undefined) d.column = this.range.startColumn;
    }
    if (this.suggestion) d.suggestion = this.suggestion;
    return d;
  }
}

/**
 * The error with a code excerpt, the failing lines marked, BuildKit style:
 *
 *     Dockerfile:3
 *     ------------------------
 *      2 |     RUN echo fine
 *      3 | >>> FOOBAR hello
 *     ------------------------
 *     ERROR: Dockerfile:3: unknown instruction: FOOBAR (did you mean ...?)
 */
export function formatDockerfileError(err: unknown, dockerfileText: string): string {
  const message = err instanceof Error ? err.message : String(err);
  const range = err instanceof BuildliteError ? err.range : undefined;
  const hint = err instanceof DockerfileError && err.suggestion ? ` (did you mean ${err.suggestion}?)` : '';
  if (!range) return `ERROR: ${message}${hint}`;
  return `${formatExcerpt(dockerfileText, range)}\nERROR: ${range.file}:${range.startLine}: ${message}${hint}`;
}

/** The closest known word, for "did you mean" (Levenshtein distance at most 2). */
export function suggest(word: string, known: readonly string[]): string | undefined {
  const w = word.toUpperCase();
  let best: string | undefined;
  let bestDist = 3;
  for (const k of known) {
    const d = distance(w, k.toUpperCase());
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 3;
}
