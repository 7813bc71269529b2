import { Builder } from '../../builder/index.js';
import { formatBytes } from '../../core/bytes.js';
import { defaultRoot, parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';

type Usage = Awaited<ReturnType<typeof Builder.diskUsageAt>>;

/** `buildlite du`: disk used by the state directory, by kind, with last use; --verbose lists every item. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('du', argv, {
    root: { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    format: { type: 'string' },
  });
  if (positionals.length) throw new UsageError('du takes no arguments', 'du');
  const format = values.format ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format "${format}": want table or json`, 'du');
  const usage = await Builder.diskUsageAt(values.root ?? defaultRoot());
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify({ total: usage.total, byKind: usage.byKind, ...(values.verbose ? { items: usage.items } : {}) }, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(render(usage, values.verbose ?? false));
  return 0;
}

export function render(usage: Usage, verbose: boolean, now = Date.now()): string {
  const rows: string[][] = [['KIND', 'COUNT', 'SIZE', 'LAST USED']];
  for (const [kind, t] of Object.entries(usage.byKind)) {
    if (t.count === 0) continue;
    rows.push([kind, String(t.count), formatBytes(t.size), t.lastUsedAt ? ago(now - t.lastUsedAt) : '-']);
  }
  rows.push(['total', String(usage.items.length), formatBytes(usage.total), '']);
  let out = table(rows);
  if (verbose) {
    const items = [...usage.items].sort((a, b) => b.size - a.size);
    const detail = [['KIND', 'ID', 'SIZE', 'LAST USED', 'IN USE'], ...items.map((i) => [i.kind, i.name ?? i.id.slice(0, 19), formatBytes(i.size), i.lastUsedAt ? ago(now - i.lastUsedAt) : '-', i.inUse ? 'yes' : ''])];
    out += `\n${table(detail)}`;
  }
  return out;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n';
}


function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
