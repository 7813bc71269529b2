import { parseFlags } from '../flags.js';
import { connect } from '../remote.js';
import { REMOTE_FLAGS } from '../remote-flags.js';
import { UsageError } from '../usage.js';

/** `buildlite logs BUILD STEP`: the full log of one step of a service build (the event stream clips each step's output). */
export async function run(argv: string[]): Promise<number> {
  const { positionals, values: v } = parseFlags('logs', argv, REMOTE_FLAGS);
  if (positionals.length !== 2) throw new UsageError(`logs wants BUILD and STEP, got ${positionals.length} argument(s)`, 'logs');
  const [build, step] = positionals as [string, string];
  const { client } = connect('logs', v);
  try {
    for await (const chunk of client.getLog(build, step)) {
      if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
    }
  } finally {
    client.close();
  }
  return 0;
}
