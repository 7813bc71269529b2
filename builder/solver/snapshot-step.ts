import { randomUUID } from 'node:crypto';
import { formatBytes } from '../../core/bytes.js';
import type { AsyncStack } from '../../core/dispose.js';
import { limitExceeded } from '../../core/limit-error.js';
import type { Mount } from '../../core/mount.js';
import type { LayerRef } from '../../cache/index.js';
import { writeLayer, type ByteCheck, type LayerDescriptor, type TreeXattrs } from '../layers/index.js';
import { fsErrorContext } from './errors.js';
import { chainUnpacked, snapshotName } from './materialize.js';
import type { OpContext } from './types.js';

export interface ActiveStep {
  readonly key: string;
  readonly mounts: Mount[];
  committed: boolean;
}

/** Prepare an active snapshot on top of `rootLayers`; the stack removes it unless it gets committed. */
export async function prepareOn(ctx: OpContext, rootLayers: readonly LayerRef[], stack: AsyncStack, kind: string): Promise<ActiveStep> {
  const parent = await ctx.materializer.ensure(rootLayers, ctx.opts);
  const key = `${kind}-${randomUUID()}`;
  const mounts = await ctx.deps.snapshotter.prepare(key, parent);
  const step: ActiveStep = { key, mounts, committed: false };
  stack.defer(async () => {
    if (!step.committed) await ctx.deps.snapshotter.remove(key);
  });
  return step;
}

/**
 * Diff the step's upper dir into a layer and commit it. The layer's bytes are
 * checked as they are made, against the layer and image limits and the
 * build's disk: a step that makes too much fails at that step, its blob is
 * never committed (the ingest aborts) and its snapshot goes with the stack.
 */
export async function writeAndCommit(ctx: OpContext, step: ActiveStep, rootLayers: readonly LayerRef[], xattrs: TreeXattrs): Promise<LayerRef[]> {
  const { opts } = ctx;
  const layer = await writeLayer(step.mounts, ctx.deps.store, {
    ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
    signal: opts.signal,
    xattrs,
    meter: await layerMeter(ctx, rootLayers),
  }).catch(fsErrorContext("writing this step's layer"));
  // await before the stack unwinds: it removes the snapshot unless the commit is done.
  return await commitLayer(ctx, step, rootLayers, layer);
}

/**
 * The checks on a step's new layer: the tar (its unpacked size, which is the
 * snapshot's on disk) and the blob (as stored), each alone and added to the
 * layers below it. The image's unpacked total is checked when the snapshots
 * below recorded their sizes (every commit since limits exist does).
 */
async function layerMeter(ctx: OpContext, rootLayers: readonly LayerRef[]): Promise<{ tar: ByteCheck; blob: ByteCheck }> {
  const { limits, disk } = ctx.opts;
  const belowBlob = rootLayers.reduce((n, l) => n + l.size, 0);
  const belowTar = await chainUnpacked(ctx.deps.snapshotter, rootLayers);
  return {
    tar: (total, chunk) => {
      if (total > limits.maxLayerUnpackedBytes) throw limitExceeded('maxLayerUnpackedBytes', limits.maxLayerUnpackedBytes, "this step's layer");
      if (belowTar !== undefined && belowTar + total > limits.maxImageUnpackedBytes) {
        throw limitExceeded('maxImageUnpackedBytes', limits.maxImageUnpackedBytes, 'the image with this step', ` (the layers below hold ${formatBytes(belowTar)})`);
      }
      disk.charge(chunk, "this step's snapshot");
    },
    blob: (total, chunk) => {
      if (total > limits.maxLayerBytes) throw limitExceeded('maxLayerBytes', limits.maxLayerBytes, "this step's layer", ' (compressed)');
      if (belowBlob + total > limits.maxImageBytes) {
        throw limitExceeded('maxImageBytes', limits.maxImageBytes, 'the image with this step', ` (compressed; the layers below are ${formatBytes(belowBlob)})`);
      }
      disk.charge(chunk, "this step's layer blob");
    },
  };
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
      await ctx.deps.snapshotter.commit(name, step.key, { unpackedBytes: layer.unpackedSize });
      step.committed = true;
    } catch (err) {
      if (!(await ctx.deps.snapshotter.stat(name))) throw err;
    }
  }
  return layers;
}
