import { isDigest } from '../../core/digest.js';
import { Builder } from '../../builder/index.js';
import { defaultRoot, parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';

/** `buildlite debug why-miss [--root DIR] [KEY|--last]`: explains cache misses from kept pre-images. */
export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'why-miss') throw new UsageError(sub === undefined ? 'debug needs a subcommand: why-miss' : `unknown debug subcommand "${sub}"`, 'debug');
  const { values, positionals } = parseFlags('debug', rest, { root: { type: 'string' }, last: { type: 'boolean' } });
  if (positionals.length > 1 || (positionals.length === 1 && values.last)) throw new UsageError('why-miss takes one KEY or --last', 'debug');
  const key = positionals[0];
  if (key !== undefined && !isDigest(key)) throw new UsageError(`"${key}" is not a cache key (sha256:<64 hex>)`, 'debug');
  const lines = await Builder.explainMissAt(values.root ?? defaultRoot(), key);
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
