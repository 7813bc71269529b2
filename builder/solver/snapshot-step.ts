import { randomUUID } from 'node:crypto';
import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '../../core/bytes.js';
import { AsyncStack } from '../../core/dispose.js';
import { limitExceeded } from '../../core/limit-error.js';
import { mountAt, unmountAt } from '../../core/mounter.js';
import type { Mount } from '../../core/mount.js';
import type { LayerRef } from '../../cache/index.js';
import { readUpperXattrs, writeLayer, type ByteCheck, type LayerDescriptor, type TreeXattrs } from '../layers/index.js';
import { fsErrorContext } from './errors.js';
import { chainUnpacked, snapshotName } from './materialize.js';
import type { OpContext } from './types.js';

/**
 * The one sequence of a step that changes the filesystem on a snapshot (RUN,
 * COPY/ADD and the other file ops, a git checkout), with its ordering rules:
 *
 *   prepare on the root layers → mount at a private dir → `work` →
 *   unmount, reading the upper dir's xattrs meanwhile → `afterUnmount` →
 *   write the layer → commit.
 *
 * The xattrs are read while the unmount runs because nothing writes to the
 * upper dir once the work has ended, and one getfattr pass serves the layer
 * and the opaque marks. The layer is written from the unmounted upper dir.
 * On any failure the stack unmounts (once), removes the mount dir and the
 * snapshot, in that order, before the error leaves.
 */
export async function runOnSnapshot(
  ctx: OpContext,
  rootLayers: readonly LayerRef[],
  kind: string,
  work: (merged: string, stack: AsyncStack) => Promise<void>,
  opts: {
    /** Whether the step can set xattrs or opaque dirs (a git checkout sets neither: skip the pass). */
    readonly readXattrs?: boolean;
    /** What runs on the unmounted upper dir before it becomes the layer. */
    readonly afterUnmount?: (step: ActiveStep, xattrs: TreeXattrs) => Promise<void>;
    /** A layer already stored whose tar this upper dir would give byte for byte: used instead of writing one. */
    readonly existingLayer?: (step: ActiveStep, xattrs: TreeXattrs) => Promise<LayerDescriptor | undefined>;
    /** Told the step's layer (null: no changes) before it is committed. */
    readonly onLayer?: (layer: LayerDescriptor | null, xattrs: TreeXattrs) => void;
  } = {},
): Promise<LayerRef[]> {
  await using stack = new AsyncStack();
  const step = await prepareOn(ctx, rootLayers, stack, kind);
  const merged = await tmpMountDir(ctx, stack);
  await mountAt(step.mounts[0]!, merged);
  // Unmounted right after the work or, on failure, by the stack: once either way.
  let mounted = true;
  const unmount = async () => {
    if (!mounted) return;
    mounted = false;
    await unmountAt(merged);
  };
  stack.defer(unmount);
  await work(merged, stack);
  const [, xattrs] = await Promise.all([unmount(), opts.readXattrs === false ? NO_XATTRS : readUpperXattrs(step.mounts, ctx.opts.signal)]);
  await opts.afterUnmount?.(step, xattrs);
  // await before the stack unwinds: it removes the snapshot unless the commit is done.
  return await writeAndCommit(ctx, step, rootLayers, xattrs, opts);
}

/** A step's tree with neither xattrs nor opaque dirs. */
const NO_XATTRS: TreeXattrs = { opaque: new Set(), attrs: new Map() };

/** An empty directory under tmpDir, removed (never recursively) when the stack unwinds. */
export async function tmpMountDir(ctx: OpContext, stack: AsyncStack): Promise<string> {
  const dir = path.join(ctx.deps.tmpDir, `m-${randomUUID()}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  stack.defer(() => rmdir(dir).catch(() => undefined));
  return dir;
}

export interface ActiveStep {
  readonly key: string;
  readonly mounts: Mount[];
  committed: boolean;
}

/** Prepare an active snapshot on top of `rootLayers`; the stack removes it unless it gets committed. */
async function prepareOn(ctx: OpContext, rootLayers: readonly LayerRef[], stack: AsyncStack, kind: string): Promise<ActiveStep> {
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
async function writeAndCommit(
  ctx: OpContext,
  step: ActiveStep,
  rootLayers: readonly LayerRef[],
  xattrs: TreeXattrs,
  hooks: { existingLayer?: (step: ActiveStep, xattrs: TreeXattrs) => Promise<LayerDescriptor | undefined>; onLayer?: (layer: LayerDescriptor | null, xattrs: TreeXattrs) => void },
): Promise<LayerRef[]> {
  const { opts } = ctx;
  const meter = await layerMeter(ctx, rootLayers);
  const existing = await hooks.existingLayer?.(step, xattrs);
  let layer: LayerDescriptor | null;
  if (existing) {
    // Written before: the limits still apply to it, and it adds no blob bytes to the build's disk.
    meter.tar(existing.unpackedSize, 0);
    meter.blob(existing.size, 0);
    layer = existing;
  } else {
    layer = await writeLayer(step.mounts, ctx.deps.store, {
      ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}),
      signal: opts.signal,
      xattrs,
      meter,
    }).catch(fsErrorContext("writing this step's layer"));
  }
  hooks.onLayer?.(layer, xattrs);
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
async function commitLayer(
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
