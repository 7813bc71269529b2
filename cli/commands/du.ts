import { Builder } from '../../builder/index.js';
import { defaultRoot, parseFlags } from '../flags.js';
import { REMOTE_FLAGS, serverOf } from '../remote-flags.js';
import type { Remote } from '../remote.js';
import { formatBytes } from '../../core/bytes.js';
import { ago, table } from '../table.js';
import { UsageError } from '../usage.js';

type Usage = Awaited<ReturnType<typeof Builder.diskUsageAt>>;

/** `buildlite du`: disk used by the state directory, by kind, with last use; --verbose lists every item. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('du', argv, {
    ...REMOTE_FLAGS,
    root: { type: 'string' },
    verbose: { type: 'boolean', short: 'v' },
    format: { type: 'string' },
  });
  if (positionals.length) throw new UsageError('du takes no arguments', 'du');
  const format = values.format ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format "${format}": want table or json`, 'du');
  // The client (gRPC) is loaded only for a server: a local du never pays for it.
  if (serverOf(values)) return remoteUsage((await import('../remote.js')).connect('du', values), format);
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

/** `du --server`: each worker's cache, by kind (workers that did not answer in time are missing). */
async function remoteUsage({ client }: Remote, format: 'table' | 'json'): Promise<number> {
  try {
    const workers = await client.diskUsage();
    if (format === 'json') {
      process.stdout.write(`${JSON.stringify({ workers, total: workers.reduce((n, w) => n + w.total, 0) }, null, 2)}\n`);
      return 0;
    }
    const rows = [['WORKER', 'KIND', 'COUNT', 'SIZE']];
    for (const w of workers) {
      if (w.error) rows.push([w.worker, 'error', '-', w.error]);
      for (const k of w.kinds) if (k.count > 0) rows.push([w.worker, k.kind, String(k.count), formatBytes(k.size)]);
      rows.push([w.worker, 'total', '', formatBytes(w.total)]);
    }
    process.stdout.write(table(rows));
    if (workers.length === 0) process.stderr.write('no worker is alive\n');
    return 0;
  } finally {
    client.close();
  }
}
