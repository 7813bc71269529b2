import { randomUUID } from 'node:crypto';
import type { AsyncStack } from '../../core/dispose.js';
import type { Mount } from '../../core/mount.js';
import type { LayerRef } from '../../cache/index.js';
import type { LayerDescriptor } from '../layers/index.js';
import { snapshotName } from './materialize.js';
import type { OpContext } from './types.js';

export interface ActiveStep {
  readonly key: string;
  readonly mounts: Mount[];
  committed: boolean;
}

/** Prepare an active snapshot on top of `rootLayers`; the stack removes it unless it gets committed. */
export async function prepareOn(ctx: OpContext, rootLayers: readonly LayerRef[], stack: AsyncStack, kind: string): Promise<ActiveStep> {
  const parent = await ctx.materializer.ensure(rootLayers, ctx.opts.signal);
  const key = `${kind}-${randomUUID()}`;
  const mounts = await ctx.deps.snapshotter.prepare(key, parent);
  const step: ActiveStep = { key, mounts, committed: false };
  stack.defer(async () => {
    if (!step.committed) await ctx.deps.snapshotter.remove(key);
  });
  return step;
}

/**
 * Commit the step's snapshot under the chain id of its new layer chain. An
 * empty diff adds no layer (the parent snapshot already is this filesystem),
 * and a chain someone else committed first is simply reused.
 */
export async function commitLayer(
  ctx: OpContext,
  step: ActiveStep,
  rootLayers: readonly LayerRef[],
  layer: LayerDescriptor | null,
): Promise<LayerRef[]> {
  if (!layer) return [...rootLayers];
  const layers: LayerRef[] = [
    ...rootLayers,
    { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, diffId: layer.diffId },
  ];
  const name = snapshotName(layers)!;
  if (!(await ctx.deps.snapshotter.stat(name))) {
    try {
      await ctx.deps.snapshotter.commit(name, step.key);
      step.committed = true;
    } catch (err) {
      if (!(await ctx.deps.snapshotter.stat(name))) throw err;
    }
  }
  return layers;
}
