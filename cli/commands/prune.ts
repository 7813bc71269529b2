import { Builder } from '../../builder/index.js';
import { defaultRoot, parseFlags } from '../flags.js';
import { UsageError } from '../usage.js';
import { formatBytes, parseBytes } from '../../core/bytes.js';
import { parseDuration } from '../../core/duration.js';
import { REMOTE_FLAGS, serverOf } from '../remote-flags.js';
import type { Remote } from '../remote.js';

/**
 * `buildlite prune`: removes cache records, snapshots and cache mounts by age,
 * size or filter, then blobs nothing names. What a running build (in any
 * process) has leased, and tagged images, are never removed.
 */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('prune', argv, {
    ...REMOTE_FLAGS,
    root: { type: 'string' },
    all: { type: 'boolean', short: 'a' },
    'keep-duration': { type: 'string' },
    'keep-storage': { type: 'string' },
    filter: { type: 'string', multiple: true },
    force: { type: 'boolean', short: 'f' },
    verbose: { type: 'boolean', short: 'v' },
  });
  if (positionals.length) throw new UsageError('prune takes no arguments', 'prune');
  // The client (gRPC) is loaded only for a server: a local prune never pays for it.
  const remote = serverOf(values) ? (await import('../remote.js')).connect('prune', values) : undefined;
  if (remote && values.filter?.length) throw new UsageError('--filter is for a local cache; a build service prunes by --all, --keep-duration and --keep-storage', 'prune');
  if (!values.force) {
    if (!process.stdin.isTTY) throw new UsageError('prune removes cache: pass --force to run it without a terminal', 'prune');
    if (!(await confirm(`This removes build cache that is not in use${remote ? ` on every worker of ${remote.server}` : ''}. Continue? [y/N] `))) return 1;
  }
  if (remote) return remotePrune(remote, values);
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

/** `prune --server` (an admin token): every live worker prunes its own cache; each answers what it freed. */
async function remotePrune({ client }: Remote, v: { all?: boolean | undefined; 'keep-duration'?: string | undefined; 'keep-storage'?: string | undefined }): Promise<number> {
  const parse = <T>(flag: string, s: string | undefined, fn: (s: string) => T): T | undefined => {
    if (s === undefined) return undefined;
    try {
      return fn(s);
    } catch (err) {
      throw new UsageError(`--${flag} "${s}": ${(err as Error).message}`, 'prune');
    }
  };
  const keepDurationMs = parse('keep-duration', v['keep-duration'], parseDuration);
  const keepStorageBytes = parse('keep-storage', v['keep-storage'], parseBytes);
  try {
    const replies = await client.prune({ ...(v.all ? { all: true } : {}), ...(keepDurationMs !== undefined ? { keepDurationMs } : {}), ...(keepStorageBytes !== undefined ? { keepStorageBytes: Math.floor(keepStorageBytes) } : {}) });
    let freed = 0;
    for (const r of replies) {
      if (r.error) process.stderr.write(`${r.worker}: could not prune: ${r.error}\n`);
      else process.stdout.write(`${r.worker}: reclaimed ${formatBytes(r.freed_bytes)} (${r.removed} items)\n`);
      freed += r.freed_bytes;
    }
    process.stdout.write(`Total reclaimed: ${formatBytes(freed)} on ${replies.length} worker(s)\n`);
    return replies.some((r) => r.error) ? 1 : 0;
  } finally {
    client.close();
  }
}
