import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { formatBytes } from '../../core/bytes.js';
import type { Digest } from '../../core/digest.js';
import { CodedError } from '../../core/errors.js';
import { limitExceeded } from '../../core/limit-error.js';
import type { BuildLimits } from '../../core/limits.js';
import type { LayerRef } from '../../cache/index.js';
import type { HttpSourceDef, ImageSourceDef } from '../graph/index.js';
import type { DiskBudget } from './budget.js';
import type { OpContext, RunOptions, SolverDeps } from './types.js';

/** FROM: pull the pinned image's blobs into the store; snapshots are made only when a step needs them. */
export async function runImageSource(def: ImageSourceDef, ctx: OpContext): Promise<LayerRef[]> {
  const { limits, disk } = ctx.opts;
  const { layers } = await ctx.deps.images.pull(def.ref, def.platform, ctx.deps.store, {
    signal: ctx.opts.signal,
    onProgress: (id, current, total) =>
      ctx.opts.emit({ type: 'progress', id, action: 'pull', current, ...(total !== undefined ? { total } : {}) }),
    admit: (all, missing) => admitImage(def.ref, all, missing, limits, disk),
  });
  return layers;
}

/**
 * A base image's declared sizes against the limits, before any layer is
 * fetched: each layer and the whole image as stored, and what the missing
 * layers will add to the state directory. The pull then holds every blob to
 * its declared size while it streams, so none can grow past what was admitted.
 */
function admitImage(ref: string, all: readonly LayerRef[], missing: readonly LayerRef[], limits: BuildLimits, disk: DiskBudget): void {
  const refused = ' (refused before pulling)';
  for (const l of all) {
    if (l.size > limits.maxLayerBytes) {
      throw limitExceeded('maxLayerBytes', limits.maxLayerBytes, `base image ${ref}: layer ${l.digest} (${formatBytes(l.size)} compressed)`, refused, { details: { image: ref, layer: l.digest } });
    }
  }
  const total = all.reduce((n, l) => n + l.size, 0);
  if (total > limits.maxImageBytes) {
    throw limitExceeded('maxImageBytes', limits.maxImageBytes, `base image ${ref} (${formatBytes(total)} compressed)`, refused, { details: { image: ref } });
  }
  disk.charge(missing.reduce((n, l) => n + l.size, 0), `pulling base image ${ref}`);
}

/** ADD <url>: fetch once per build into tmpDir; the content digest enters the cache key. */
export async function runHttpSource(
  def: HttpSourceDef,
  deps: SolverDeps,
  opts: Pick<RunOptions, 'signal' | 'disk'>,
): Promise<{ path: string; digest: Digest; name?: string }> {
  if (!deps.http) throw new CodedError('PERMISSION_DENIED', `ADD ${def.url}: fetching URLs is not enabled on this builder`);
  const dir = path.join(deps.tmpDir, `http-${randomUUID()}`);
  await mkdir(dir, { mode: 0o700 });
  const file = path.join(dir, path.posix.basename(def.filename) || 'download');
  try {
    const got = await deps.http.fetchToFile(def.url, file, {
      signal: opts.signal,
      ...(def.checksum ? { checksum: def.checksum } : {}),
      meter: (_total, chunk) => opts.disk.charge(chunk, `ADD ${def.url}`),
    });
    return { path: file, digest: got.digest, ...(def.nameFromResponse && got.filename !== undefined ? { name: got.filename } : {}) };
  } catch (err) {
    // The fetcher removes a partial file; its directory goes too (a kept one is removed after the build).
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
