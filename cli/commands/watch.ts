import { followBuild } from '../follow.js';
import { parseFlags } from '../flags.js';
import { Interrupts } from '../interrupts.js';
import { createRenderer, type ProgressMode } from '../progress.js';
import { connect } from '../remote.js';
import { REMOTE_FLAGS } from '../remote-flags.js';
import { UsageError } from '../usage.js';

const MODES = ['auto', 'tty', 'plain', 'json'];

/**
 * `buildlite watch BUILD` (or `attach`): follows a build of a build service
 * with the same progress output as `build`, from the start or after a seq.
 * Exits as `build` would have: 0 succeeded, 1 failed. Ctrl-C stops watching
 * and leaves the build running (`buildlite cancel` stops it).
 */
export async function run(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags('watch', argv, { ...REMOTE_FLAGS, 'from-seq': { type: 'string' }, progress: { type: 'string' } });
  if (positionals.length !== 1) throw new UsageError('watch takes one BUILD id', 'watch');
  const fromSeq = v['from-seq'] === undefined ? 0 : Number(v['from-seq']);
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 0) throw new UsageError(`--from-seq "${v['from-seq']}": want a non-negative integer`, 'watch');
  const progress = v.progress ?? 'auto';
  if (!MODES.includes(progress)) throw new UsageError(`--progress "${progress}": want ${MODES.join(', ')}`, 'watch');
  const buildId = positionals[0]!;
  const { client, server } = connect('watch', v);
  using interrupts = new Interrupts();
  // The Dockerfile stays with whoever submitted it: failures are shown without the excerpt.
  const renderer = createRenderer(progress as ProgressMode, '');
  try {
    await client.get(buildId); // a wrong id or another client's build fails here, before any output
    renderer.attached({ buildId, server });
    const f = await followBuild(client, buildId, { fromSeq, server, onEvent: (ev) => renderer.event(ev), signal: interrupts.signal });
    renderer.close();
    if (f.interrupted) {
      process.stderr.write(`stopped watching; build ${buildId} goes on (buildlite cancel ${buildId} stops it)\n`);
      return interrupts.exitCode;
    }
    return f.result ? 0 : 1;
  } finally {
    renderer.close();
    client.close();
  }
}
