/** Text output of listing commands: aligned columns, sizes and ages as people read them. */

/** Rows (the first is the header) as left-aligned columns two spaces apart. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}

export function ago(ms: number): string {
  return `${duration(ms)} ago`;
}

/** 42s, 5m, 3h, 2d: coarse on purpose (a column, not a stopwatch). */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86400) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
