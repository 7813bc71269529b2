import type { BuildInfo, BuildliteClient } from '../../api/index.js';
import { parseFlags } from '../flags.js';
import { connect } from '../remote.js';
import { REMOTE_FLAGS } from '../remote-flags.js';
import { UsageError } from '../usage.js';

const ENDED = new Set(['succeeded', 'failed', 'cancelled']);
/** How long `cancel` waits for a running build to stop before it reports what it saw. */
const END_WAIT_MS = 15_000;

/**
 * `buildlite cancel BUILD...`: asks the service to stop builds, then waits
 * (up to 15 s, or not with --no-wait) until each has ended, and prints each
 * one's final state. A build that had already ended is reported as such;
 * exit 1 when one is still running after the wait.
 */
export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('cancel', argv, { ...REMOTE_FLAGS, 'no-wait': { type: 'boolean' } });
  if (positionals.length === 0) throw new UsageError('cancel takes one or more BUILD ids', 'cancel');
  const { client } = connect('cancel', v);
  let code = 0;
  try {
    for (const id of positionals) {
      let info = await client.cancel(id);
      if (!v['no-wait']) info = await untilEnded(client, info);
      process.stdout.write(`${info.buildId} ${describe(info)}\n`);
      if (!v['no-wait'] && !ENDED.has(info.state)) code = 1;
    }
    return code;
  } finally {
    client.close();
  }
}

async function untilEnded(client: BuildliteClient, info: BuildInfo): Promise<BuildInfo> {
  const deadline = Date.now() + END_WAIT_MS;
  while (!ENDED.has(info.state) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    info = await client.get(info.buildId);
  }
  return info;
}

function describe(b: BuildInfo): string {
  if (b.state === 'cancelled') return 'cancelled';
  if (ENDED.has(b.state)) return `had already ended: ${b.state}`;
  return `cancel requested; still ${b.state}`;
}
