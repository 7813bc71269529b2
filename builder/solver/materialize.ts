import { mkdir, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { mountAt, unmountAt } from '../../core/mounter.js';
import type { Mount } from '../../core/mount.js';
import type { LayerRef } from '../../cache/index.js';
import { applyLayer, chainId } from '../layers/index.js';
import { isCancelled } from '../../core/errors.js';
import { LayerError } from './errors.js';
import type { SolverDeps } from './types.js';

/** The committed snapshot name that holds a layer chain's filesystem, or null for the empty chain. */
export function snapshotName(layers: readonly LayerRef[]): string | null {
  return layers.length === 0 ? null : chainId(layers.map((l) => l.diffId));
}

/**
 * Make sure the filesystem of `layers` exists as a committed snapshot, applying
 * missing layers on top of the deepest one present. Shared work is deduplicated
 * per name so two vertices on the same base unpack it once.
 */
export class Materializer {
  private readonly inflight = new Map<string, Promise<void>>();
  constructor(private readonly deps: SolverDeps) {}

  async ensure(layers: readonly LayerRef[], signal?: AbortSignal): Promise<string | null> {
    const name = snapshotName(layers);
    if (name === null) return null;
    if (await this.deps.snapshotter.stat(name)) return name;
    let job = this.inflight.get(name);
    if (!job) {
      job = this.build(layers, name, signal).finally(() => this.inflight.delete(name));
      this.inflight.set(name, job);
    }
    await job;
    return name;
  }

  private async build(layers: readonly LayerRef[], name: string, signal?: AbortSignal): Promise<void> {
    const parent = await this.ensure(layers.slice(0, -1), signal);
    const layer = layers[layers.length - 1]!;
    const key = `unpack-${randomUUID()}`;
    const mounts = await this.deps.snapshotter.prepare(key, parent);
    try {
      await withMounted(mounts, this.deps.tmpDir, async (dir) => {
        const blob = await this.deps.store.open(layer.digest, signal);
        await applyLayer(blob, layer.mediaType, dir, { expectedDiffId: layer.diffId, signal }).catch((err: unknown) => {
          // Which layer, in words the step's report can carry; the run adds the image and its FROM line.
          throw isCancelled(err) ? err : new LayerError(layer.digest, err);
        });
      });
      await this.deps.snapshotter.commit(name, key);
    } catch (err) {
      await this.deps.snapshotter.remove(key).catch(() => undefined);
      // Another build may have committed the same chain meanwhile: that is success.
      if (await this.deps.snapshotter.stat(name)) return;
      throw err;
    }
  }
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
