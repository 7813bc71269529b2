import type { LayerRef } from '../../cache/index.js';
import { resolveChown } from '../executor/index.js';
import type { FileDef } from '../graph/index.js';
import { fsErrorContext } from './errors.js';
import { applyFileActions } from './file-ops/index.js';
import { inputDir } from './input-dir.js';
import { runOnSnapshot } from './snapshot-step.js';
import type { OpContext, VertexResult } from './types.js';

/** COPY/ADD/WORKDIR: write through a mounted snapshot, then diff its upper dir into a layer. */
export async function runFile(def: FileDef, inputs: readonly VertexResult[], ctx: OpContext): Promise<LayerRef[]> {
  const { opts } = ctx;
  const rootLayers = def.hasRoot ? inputs[0]!.layers : [];
  return runOnSnapshot(ctx, rootLayers, 'file', async (merged, stack) => {
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
  });
}
