import path from 'node:path';
import type { LayerRef } from '../../cache/index.js';
import { resolveChown } from '../executor/index.js';
import type { FileDef } from '../graph/index.js';
import { fsErrorContext } from './errors.js';
import { applyFileActions } from './file-ops/index.js';
import { inputDir } from './input-dir.js';
import { upperDirOf } from '../layers/index.js';
import { CopyDonors } from './copy-donors.js';
import { FileReuse } from './file-ops/reuse.js';
import { snapshotName } from './materialize.js';
import { runOnSnapshot } from './snapshot-step.js';
import type { OpContext, VertexResult } from './types.js';

/**
 * COPY/ADD/WORKDIR: write through a mounted snapshot, then diff its upper dir
 * into a layer. A lone COPY that ran before on the same parent links the
 * files it would write unchanged from its last result (file-ops/reuse.ts).
 */
export async function runFile(def: FileDef, inputs: readonly VertexResult[], ctx: OpContext): Promise<LayerRef[]> {
  const { opts } = ctx;
  const rootLayers = def.hasRoot ? inputs[0]!.layers : [];
  const donors = new CopyDonors(path.join(path.dirname(ctx.deps.tmpDir), 'copy-donors'));
  const donorKey = def.actions.length === 1 && def.actions[0]!.op === 'copy' ? donors.keyOf(snapshotName(rootLayers), def.actions) : undefined;
  const donorName = donorKey !== undefined ? await donors.get(donorKey) : undefined;
  const donorDir = donorName !== undefined ? await ctx.deps.snapshotter.ownDir?.(donorName) : undefined;
  let reuse: FileReuse | undefined;
  const layers = await runOnSnapshot(ctx, rootLayers, 'file', async (merged, stack) => {
    if (donorDir !== undefined) reuse = new FileReuse(merged, donorDir);
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
        ...(reuse ? { reuse } : {}),
      },
      opts.signal,
    ).catch(fsErrorContext('copying files into the image'));
  }, {
    afterUnmount: async (step) => {
      if (reuse && reuse.pending > 0) {
        try {
          reuse.finish(upperDirOf(step.mounts));
        } catch (err) {
          fsErrorContext('copying files into the image')(err);
        }
      }
    },
  });
  // The next run of this COPY takes its unchanged files from this result.
  const made = snapshotName(layers);
  if (donorKey !== undefined && layers.length > rootLayers.length && made !== null && made !== donorName) await donors.set(donorKey, made).catch(() => undefined);
  return layers;
}
