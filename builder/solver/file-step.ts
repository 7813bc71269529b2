import path from 'node:path';
import type { LayerRef } from '../../cache/index.js';
import { resolveChown } from '../executor/index.js';
import type { FileDef } from '../graph/index.js';
import { fsErrorContext } from './errors.js';
import { applyFileActions } from './file-ops/index.js';
import { inputDir } from './input-dir.js';
import { upperDirOf, type LayerDescriptor, type TreeXattrs } from '../layers/index.js';
import { CopyDonors } from './copy-donors.js';
import { FileReuse, sameTree } from './file-ops/reuse.js';
import { snapshotName } from './materialize.js';
import { runOnSnapshot } from './snapshot-step.js';
import type { OpContext, VertexResult } from './types.js';

/**
 * COPY/ADD/WORKDIR: write through a mounted snapshot, then diff its upper dir
 * into a layer. A lone COPY that ran before (on any parent) links the files it
 * would write unchanged from its last result (file-ops/reuse.ts); when its
 * whole tree comes out the same as that result's (sameTree), it takes that
 * result's layer instead of reading, hashing and compressing it again. The
 * tree is the same only when its directories' times are too: a parent the
 * COPY creates gets the build's time unless SOURCE_DATE_EPOCH is set.
 */
export async function runFile(def: FileDef, inputs: readonly VertexResult[], ctx: OpContext): Promise<LayerRef[]> {
  const { opts } = ctx;
  const rootLayers = def.hasRoot ? inputs[0]!.layers : [];
  const donors = new CopyDonors(path.join(path.dirname(ctx.deps.tmpDir), 'copy-donors'));
  const donorKey = def.actions.length === 1 && def.actions[0]!.op === 'copy' ? donors.keyOf(def.actions) : undefined;
  const donor = donorKey !== undefined ? await donors.get(donorKey) : undefined;
  const donorDir = donor !== undefined ? await ctx.deps.snapshotter.ownDir?.(donor.snapshot) : undefined;
  const epoch = opts.sourceDateEpoch ?? null;
  let reuse: FileReuse | undefined;
  let made: { layer: LayerDescriptor | null; plain: boolean } | undefined;
  const layers = await runOnSnapshot(
    ctx,
    rootLayers,
    'file',
    async (merged, stack) => {
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
    },
    {
      afterUnmount: async (step) => {
        if (!reuse || reuse.pending === 0) return;
        try {
          reuse.finish(upperDirOf(step.mounts));
        } catch (err) {
          fsErrorContext('copying files into the image')(err);
        }
      },
      // The same tree as the donor's (every file its very inode): its layer, without reading a byte.
      existingLayer: async (step, xattrs) => {
        const layer = donor?.layer;
        if (!reuse || reuse.pending === 0 || !layer || donor.plain !== true || donor.sourceDateEpoch !== epoch || !plainTree(xattrs)) return undefined;
        if (!(await ctx.deps.store.stat(layer.digest))) return undefined;
        return sameTree(upperDirOf(step.mounts), donorDir!) ? layer : undefined;
      },
      onLayer: (layer, xattrs) => {
        made = { layer, plain: plainTree(xattrs) };
      },
    },
  );
  // The next run of this COPY takes its unchanged files (or its whole layer) from this result.
  const name = snapshotName(layers);
  if (donorKey !== undefined && made?.layer && name !== null && name !== donor?.snapshot) {
    await donors.set(donorKey, { snapshot: name, layer: made.layer, sourceDateEpoch: epoch, plain: made.plain }).catch(() => undefined);
  }
  return layers;
}

function plainTree(x: TreeXattrs): boolean {
  return x.opaque.size === 0 && x.attrs.size === 0;
}
