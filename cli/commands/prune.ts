import { Builder } from '../../builder/index.js';
import { defaultRoot, parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';
import { formatBytes } from '../../core/bytes.js';

/**
 * `buildlite prune`: removes cache records, snapshots and cache mounts by age,
 * size or filter, then blobs nothing names. What a running build (in any
 * process) has leased, and tagged images, are never removed.
 */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('prune', argv, {
    root: { type: 'string' },
    all: { type: 'boolean', short: 'a' },
    'keep-duration': { type: 'string' },
    'keep-storage': { type: 'string' },
    filter: { type: 'string', multiple: true },
    force: { type: 'boolean', short: 'f' },
    verbose: { type: 'boolean', short: 'v' },
  });
  if (positionals.length) throw new UsageError('prune takes no arguments', 'prune');
  if (!values.force) {
    if (!process.stdin.isTTY) throw new UsageError('prune removes cache: pass --force to run it without a terminal', 'prune');
    if (!(await confirm('This removes build cache that is not in use. Continue? [y/N] '))) return 1;
  }
  const result = await Builder.pruneAt(values.root ?? defaultRoot(), {
    ...(values.all ? { all: true } : {}),
    ...(values['keep-duration'] !== undefined ? { keepDuration: values['keep-duration'] } : {}),
    ...(values['keep-storage'] !== undefined ? { keepStorage: values['keep-storage'] } : {}),
    ...(values.filter?.length ? { filters: values.filter } : {}),
  });
  if (values.verbose) for (const i of result.removed) process.stdout.write(`removed ${i.kind} ${i.name ?? i.id} ${formatBytes(i.size)}\n`);
  for (const f of result.failed) process.stderr.write(`could not remove ${f.item.kind} ${f.item.id}: ${f.reason}\n`);
  process.stdout.write(`Total reclaimed: ${formatBytes(result.freedBytes)} (${result.removed.length} items); in use now: ${formatBytes(result.usageAfter)}\n`);
  if (!result.underBudget) process.stderr.write('warning: what running builds hold alone exceeds --keep-storage\n');
  return 0;
}

async function confirm(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
