import { writeFile } from 'node:fs/promises';
import type { BuildEvent, BuildResult } from '../core/build.js';
import type { WireError } from '../core/errors.js';
import { Builder } from '../builder/index.js';
import type { ParsedBuild } from './commands/build.js';
import { createRenderer } from './progress.js';

/** Embedded mode: the builder runs in this process against a local state directory. */
export async function runLocalBuild(p: ParsedBuild): Promise<number> {
  const builder = await Builder.open({ root: p.root, insecureRegistries: p.insecure });
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const renderer = createRenderer(p.progress, p.request.dockerfile);
  let result: BuildResult | undefined;
  let error: WireError | undefined;
  try {
    for await (const ev of builder.build(p.request, { secrets: p.secrets, signal: abort.signal, debugCache: p.debugCache }) as AsyncIterable<BuildEvent>) {
      renderer.event(ev);
      if (ev.type === 'result') result = ev.result;
      if (ev.type === 'error') error = ev.error;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    renderer.close();
  }
  if (error || !result) return 1;
  if (p.iidfile) await writeFile(p.iidfile, result.imageDigest);
  if (p.metadataFile) {
    const meta = {
      'containerimage.digest': result.imageDigest,
      'containerimage.config.digest': result.configDigest,
      'image.name': result.pushed.join(','),
      pushed: result.pushed,
      cache: result.cache,
    };
    await writeFile(p.metadataFile, `${JSON.stringify(meta, null, 2)}\n`);
  }
  if (p.progress === 'quiet') process.stdout.write(`${result.imageDigest}\n`);
  return 0;
}
