import { writeFile } from 'node:fs/promises';
import type { BuildEvent, BuildResult } from '../core/build.js';
import type { WireError } from '../core/errors.js';
import { Builder } from '../builder/index.js';
import type { ParsedBuild } from './commands/build.js';
import { createRenderer } from './progress.js';

/** Embedded mode: the builder runs in this process against a local state directory. */
export async function runLocalBuild(p: ParsedBuild): Promise<number> {
  if (p.request.network === 'host' && (p.request.allow ?? []).includes('network.host') && !p.allowHostNetwork) {
    // Both halves are needed: the build asks (--allow), the operator grants. Embedded, the operator is whoever runs this.
    process.stderr.write(
      'error: --network=host is not allowed on this machine: the operator grants it with --allow-host-network or BUILDLITE_ALLOW_HOST_NETWORK=1\n',
    );
    return 1;
  }
  // Embedded mode serves the developer at this machine: ADD may fetch from its own loopback
  // (a local file server); private and link-local ranges stay refused, as in the service.
  const builder = await Builder.open({ root: p.root, insecureRegistries: p.insecure, allowHostNetwork: p.allowHostNetwork, httpPolicy: { allowLoopback: true } });
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
    await builder.close();
  }
  if (error || !result) return 1;
  if (p.iidfile) await writeFile(p.iidfile, result.imageDigest);
  if (p.metadataFile) await writeFile(p.metadataFile, `${JSON.stringify(metadataOf(p, result), null, 2)}\n`);
  if (p.progress === 'quiet') process.stdout.write(`${result.imageDigest}\n`);
  return 0;
}

/** `--metadata-file`: buildx's keys where they exist, so scripts written for buildx keep working, plus ours. */
export function metadataOf(p: ParsedBuild, result: BuildResult): Record<string, unknown> {
  const names = (p.request.outputs ?? []).flatMap((o) => ('refs' in o && o.refs ? o.refs : []));
  return {
    'containerimage.digest': result.imageDigest,
    'containerimage.config.digest': result.configDigest,
    'image.name': [...new Set(names)].join(','),
    pushed: result.pushed,
    outputs: (p.request.outputs ?? []).map((o) => ({ type: o.type, ...('dest' in o ? { dest: o.dest } : {}), ...('refs' in o && o.refs ? { refs: o.refs } : {}) })),
    cache: { hits: result.cache.hits, misses: result.cache.misses },
  };
}
