import { AsyncStack } from '../../core/dispose.js';
import { mountAt, unmountAt } from '../../core/mounter.js';
import type { LayerRef } from '../../cache/index.js';
import { resolveChown } from '../executor/index.js';
import type { FileDef } from '../graph/index.js';
import { readUpperXattrs } from '../layers/index.js';
import { inputDir, tmpMountDir } from './exec-op.js';
import { fsErrorContext } from './errors.js';
import { applyFileActions } from './file-op.js';
import { prepareOn, writeAndCommit } from './snapshot-step.js';
import type { OpContext, VertexResult } from './types.js';

/** COPY/ADD/WORKDIR: write through a mounted snapshot, then diff its upper dir into a layer. */
export async function runFile(def: FileDef, inputs: readonly VertexResult[], ctx: OpContext): Promise<LayerRef[]> {
  const { opts } = ctx;
  const rootLayers = def.hasRoot ? inputs[0]!.layers : [];
  await using stack = new AsyncStack();
  const step = await prepareOn(ctx, rootLayers, stack, 'file');
  const merged = await tmpMountDir(ctx, stack);
  await mountAt(step.mounts[0]!, merged);
  let mounted = true;
  stack.defer(async () => {
    if (mounted) await unmountAt(merged);
  });

  const sources = new Map<number, string>();
  for (const a of def.actions) {
    if (a.op === 'copy' && !sources.has(a.src)) sources.set(a.src, await inputDir(ctx, a.src, inputs, stack));
  }
  await applyFileActions(
    merged,
    def.actions,
    {
      sourceDir: (i) => sources.get(i)!,
      sourceExcludes: (i) => {
        const v = ctx.graph.get(ctx.vertex.inputs[i]!);
        return v.def.kind === 'local' ? v.def.excludes : [];
      },
      sourceKind: (i) => (ctx.graph.get(ctx.vertex.inputs[i]!).def.kind === 'local' ? 'context' : 'rootfs'),
      sourceFileName: (i) => inputs[i]?.file?.name,
      resolveChown: (spec) => resolveChown(merged, spec.group !== undefined ? `${spec.user}:${spec.group}` : spec.user),
      ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
    },
    opts.signal,
  ).catch(fsErrorContext('copying files into the image'));
  // The layer's xattrs are read from the upper dir while the unmount runs (the copy is done).
  const [, xattrs] = await Promise.all([
    unmountAt(merged).then(() => {
      mounted = false;
    }),
    readUpperXattrs(step.mounts, opts.signal),
  ]);

  return await writeAndCommit(ctx, step, rootLayers, xattrs);
}
