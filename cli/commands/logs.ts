import { BuildliteClient } from '../../api/index.js';
import { parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';
import { usageOf } from './help.js';

/**
 * Its usage text lives here until help.ts lists the command (help.ts falls
 * back to the general help for `logs`; this command prints its own).
 */
const LOGS_USAGE = usageOf('logs');

const FLAGS = {
  server: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('logs', argv, FLAGS);
  if (v.help) {
    process.stdout.write(`${LOGS_USAGE}\n`);
    return 0;
  }
  const usage = (msg: string) => {
    process.stderr.write(`buildlite: ${msg}\n\n${LOGS_USAGE}\n`);
    return 2;
  };
  if (positionals.length !== 2) return usage(`logs wants BUILD and STEP, got ${positionals.length} argument(s)`);
  const server = v.server ?? process.env['BUILDLITE_SERVER'];
  if (!server) return usage('--server ADDR is required (or set BUILDLITE_SERVER)');
  const token = v.token ?? process.env['BUILDLITE_TOKEN'];
  if (!token) throw new UsageError('a token is required: --token T (or BUILDLITE_TOKEN)', 'logs');
  const [build, step] = positionals as [string, string];
  const client = new BuildliteClient(server, token);
  try {
    for await (const chunk of client.getLog(build, step)) {
      if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
    }
  } finally {
    client.close();
  }
  return 0;
}
