import { CodedError } from './errors.js';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `24h`, `7d`, `1h30m`, `500ms` → milliseconds. */
export function parseDuration(text: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  const src = text.trim();
  let total = 0;
  let at = 0;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    at = re.lastIndex;
  }
  if (src.length === 0 || at !== src.length) {
    throw new CodedError('INVALID_ARGUMENT', `not a duration: ${JSON.stringify(text.slice(0, 40))} (want e.g. 30m, 24h or 7d)`);
  }
  return total;
}

/** Milliseconds in seconds, as messages give every timeout: `30s`, `1.5s`, `0.25s`. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}
