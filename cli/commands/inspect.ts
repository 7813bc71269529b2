import type { BuildInfo } from '../../api/index.js';
import { parseFlags } from '../flags.js';
import { connect } from '../remote.js';
import { REMOTE_FLAGS } from '../remote-flags.js';
import { duration } from '../table.js';
import { UsageError } from '../usage.js';

/** `buildlite inspect BUILD`: one build of a build service: state, where and when it ran, its image or its error. */
export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('inspect', argv, { ...REMOTE_FLAGS, format: { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError('inspect takes one BUILD id', 'inspect');
  const format = v.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--format "${format}": want text or json`, 'inspect');
  const { client } = connect('inspect', v);
  try {
    const info = await client.get(positionals[0]!);
    process.stdout.write(format === 'json' ? `${JSON.stringify(info, null, 2)}\n` : renderInfo(info));
    return 0;
  } finally {
    client.close();
  }
}

export function renderInfo(b: BuildInfo, now = Date.now()): string {
  const at = (ms: number) => (ms ? new Date(ms).toISOString() : '-');
  const lines: Array<[string, string]> = [
    ['Build', b.buildId],
    ['Client', b.client],
    ['State', b.state],
    ['Project', b.project || '-'],
    ['Worker', b.worker || '-'],
    ['Attempts', String(b.attempts)],
    ['Created', at(b.createdAt)],
    ['Started', at(b.startedAt)],
    ['Finished', at(b.finishedAt)],
    ['Queued for', b.createdAt && b.startedAt ? duration(b.startedAt - b.createdAt) : '-'],
    ['Ran for', b.startedAt ? duration((b.finishedAt || now) - b.startedAt) : '-'],
    ['Image', b.imageDigest || '-'],
  ];
  if (b.waiting) lines.push(['Waiting', b.waiting]);
  if (b.error) lines.push(['Error', `${b.error.code}: ${b.error.message}`]);
  const width = Math.max(...lines.map(([k]) => k.length)) + 1;
  return lines.map(([k, val]) => `${`${k}:`.padEnd(width)} ${val}\n`).join('');
}
