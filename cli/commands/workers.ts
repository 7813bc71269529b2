import type { WorkerInfo } from '../../api/index.js';
import { parseFlags } from '../flags.js';
import { connect } from '../remote.js';
import { REMOTE_FLAGS } from '../remote-flags.js';
import { formatBytes } from '../../core/bytes.js';
import { ago, table } from '../table.js';
import { UsageError } from '../usage.js';

/** `buildlite workers`: the workers of a build service, their load, cache and last heartbeat. */
export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('workers', argv, { ...REMOTE_FLAGS, format: { type: 'string' } });
  if (positionals.length) throw new UsageError('workers takes no arguments', 'workers');
  const format = v.format ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format "${format}": want table or json`, 'workers');
  const { client } = connect('workers', v);
  try {
    const workers = await client.listWorkers();
    process.stdout.write(format === 'json' ? `${JSON.stringify(workers, null, 2)}\n` : renderWorkers(workers));
    return 0;
  } finally {
    client.close();
  }
}

export function renderWorkers(workers: readonly WorkerInfo[], now = Date.now()): string {
  const rows = [['WORKER', 'HOST', 'PLATFORM', 'STATUS', 'BUILDS', 'RUNNING', 'CACHE', 'LAST HEARTBEAT']];
  for (const w of workers) {
    rows.push([
      w.id,
      w.host,
      // Its own; every platform it offers (emulated ones too) is in --format json.
      w.platform || '-',
      w.alive ? 'alive' : 'lost',
      `${w.active}/${w.concurrency}`,
      w.builds.length ? w.builds.join(',') : '-',
      w.cacheBytes ? formatBytes(w.cacheBytes) : '-',
      w.lastSeen ? ago(now - w.lastSeen) : '-',
    ]);
  }
  return table(rows);
}
