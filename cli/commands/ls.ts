import type { BuildInfo } from '../../api/index.js';
import { parseFlags } from '../flags.js';
import { connect } from '../remote.js';
import { REMOTE_FLAGS } from '../remote-flags.js';
import { ago, duration, table } from '../table.js';
import { UsageError } from '../usage.js';

const FLAGS = {
  ...REMOTE_FLAGS,
  state: { type: 'string' },
  client: { type: 'string' },
  limit: { type: 'string' },
  format: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
} as const;

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

/** `buildlite ls`: the builds of a build service, newest first (an admin token sees every client's). */
export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('ls', argv, FLAGS);
  if (positionals.length) throw new UsageError('ls takes no arguments', 'ls');
  if (v.state !== undefined && !STATES.includes(v.state)) throw new UsageError(`--state "${v.state}": want ${STATES.join(', ')}`, 'ls');
  const limit = v.limit === undefined ? 50 : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError(`--limit "${v.limit}": want 1 to 1000`, 'ls');
  const format = v.format ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format "${format}": want table or json`, 'ls');
  const { client } = connect('ls', v);
  try {
    const builds = await client.list({ ...(v.state ? { state: v.state } : {}), ...(v.client ? { client: v.client } : {}), limit });
    if (v.quiet) process.stdout.write(builds.map((b) => `${b.buildId}\n`).join(''));
    else if (format === 'json') process.stdout.write(`${JSON.stringify(builds, null, 2)}\n`);
    else process.stdout.write(renderBuilds(builds));
    return 0;
  } finally {
    client.close();
  }
}

export function renderBuilds(builds: readonly BuildInfo[], now = Date.now()): string {
  const rows = [['BUILD ID', 'CLIENT', 'STATE', 'PROJECT', 'WORKER', 'CREATED', 'DURATION', 'IMAGE']];
  for (const b of builds) {
    rows.push([
      b.buildId,
      b.client,
      // Held back by its client's concurrency quota: `inspect` says which limit.
      b.waiting ? `${b.state} (quota)` : b.state,
      b.project.length > 40 ? `${b.project.slice(0, 39)}…` : b.project,
      b.worker || '-',
      b.createdAt ? ago(now - b.createdAt) : '-',
      b.startedAt ? duration((b.finishedAt || now) - b.startedAt) : '-',
      b.imageDigest ? b.imageDigest.slice(0, 19) : '-',
    ]);
  }
  return table(rows);
}
