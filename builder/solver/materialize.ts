import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { mountAt, unmountAt } from '../../core/mounter.js';
import type { ContentStore } from '../../core/content.js';
import type { BuildLimits } from '../../core/limits.js';
import type { Mount } from '../../core/mount.js';
import type { LayerRef } from '../../cache/index.js';
import { formatBytes } from '../../core/bytes.js';
import { isCancelled } from '../../core/errors.js';
import { limitExceeded } from '../../core/limit-error.js';
import { applyLayer, chainId, type ApplyOptions } from '../layers/index.js';
import type { Snapshotter } from '../snapshot/index.js';
import type { DiskBudget } from './budget.js';
import { LayerError } from './errors.js';

/**
 * What an unpack needs of the machine: a part of the solver's deps, named
 * here so that the solver's types (which hand a Materializer to every op)
 * are not also this module's input.
 */
export interface MaterializerDeps {
  readonly store: ContentStore;
  readonly snapshotter: Snapshotter;
  /** Scratch space for mount points. */
  readonly tmpDir: string;
}

/** What an unpack needs of the build that asks for it: its signal, limits and disk count. */
export interface UnpackRun {
  readonly signal: AbortSignal;
  readonly limits: BuildLimits;
  readonly disk: DiskBudget;
}

/** The committed snapshot name that holds a layer chain's filesystem, or null for the empty chain. */
export function snapshotName(layers: readonly LayerRef[]): string | null {
  return layers.length === 0 ? null : chainId(layers.map((l) => l.diffId));
}

/**
 * The unpacked size of a layer chain: the sum of what each prefix's snapshot
 * recorded at its commit, or undefined when one is missing or older than the
 * record (its size is then unknown without reading it all).
 */
export async function chainUnpacked(snapshotter: Snapshotter, layers: readonly LayerRef[]): Promise<number | undefined> {
  let total = 0;
  for (let i = 1; i <= layers.length; i++) {
    const n = (await snapshotter.stat(snapshotName(layers.slice(0, i))!))?.unpackedBytes;
    if (n === undefined) return undefined;
    total += n;
  }
  return total;
}

/**
 * Make sure the filesystem of `layers` exists as a committed snapshot, applying
 * missing layers on top of the deepest one present. Shared work is deduplicated
 * per name so two vertices on the same base unpack it once (under the limits,
 * and counted on the disk, of the build that started it).
 */
export class Materializer {
  private readonly inflight = new Map<string, Promise<void>>();
  constructor(private readonly deps: MaterializerDeps) {}

  async ensure(layers: readonly LayerRef[], run: UnpackRun): Promise<string | null> {
    const name = snapshotName(layers);
    if (name === null) return null;
    if (await this.deps.snapshotter.stat(name)) return name;
    let job = this.inflight.get(name);
    if (!job) {
      job = this.build(layers, name, run).finally(() => this.inflight.delete(name));
      this.inflight.set(name, job);
    }
    await job;
    return name;
  }

  private async build(layers: readonly LayerRef[], name: string, run: UnpackRun): Promise<void> {
    const parent = await this.ensure(layers.slice(0, -1), run);
    const layer = layers[layers.length - 1]!;
    const below = await chainUnpacked(this.deps.snapshotter, layers.slice(0, -1));
    const key = `unpack-${randomUUID()}`;
    const mounts = await this.deps.snapshotter.prepare(key, parent);
    try {
      const { size } = await withMounted(mounts, this.deps.tmpDir, async (dir) => {
        const blob = await this.deps.store.open(layer.digest, run.signal);
        return applyLayer(blob, layer.mediaType, dir, { expectedDiffId: layer.diffId, signal: run.signal, ...unpackBounds(run, below) }).catch((err: unknown) => {
          // Which layer, in words the step's report can carry; the run adds the image and its FROM line.
          throw isCancelled(err) ? err : new LayerError(layer.digest, err);
        });
      });
      await this.deps.snapshotter.commit(name, key, { unpackedBytes: size });
    } catch (err) {
      await this.deps.snapshotter.remove(key).catch(() => undefined);
      // Another build may have committed the same chain meanwhile: that is success.
      if (await this.deps.snapshotter.stat(name)) return;
      throw err;
    }
  }
}

/**
 * An unpack's bounds: the unpacked layer limit stops the extraction before
 * it writes past it (so the state dir grows by at most the limit, and the
 * snapshot is then removed); the image's unpacked total, when the layers
 * below recorded theirs; and every byte written counted on the build's disk.
 */
function unpackBounds(run: UnpackRun, below: number | undefined): Pick<ApplyOptions, 'limits' | 'meter'> {
  const { limits, disk } = run;
  return {
    limits: { maxBytes: limits.maxLayerUnpackedBytes, tooLarge: (max) => limitExceeded('maxLayerUnpackedBytes', max, 'unpacking') },
    meter: (total, chunk) => {
      if (below !== undefined && below + total > limits.maxImageUnpackedBytes) {
        throw limitExceeded('maxImageUnpackedBytes', limits.maxImageUnpackedBytes, 'unpacking', ` (the layers below hold ${formatBytes(below)})`);
      }
      disk.charge(chunk, 'unpacking');
    },
  };
}

/** Mount `mounts` (one rootfs mount) on a fresh dir under tmpDir for the duration of `fn`. */
export async function withMounted<T>(mounts: readonly Mount[], tmpDir: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const first = mounts[0];
  if (!first || mounts.length !== 1) throw new Error(`expected exactly one rootfs mount, got ${mounts.length}`);
  const dir = path.join(tmpDir, `mnt-${randomUUID()}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await mountAt(first, dir);
    try {
      return await fn(dir);
    } finally {
      await unmountAt(dir);
    }
  } finally {
    // rmdir, never rm -r: if the unmount failed, a recursive delete would empty the snapshot.
    await rmdir(dir).catch(() => undefined);
  }
}
