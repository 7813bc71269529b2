import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../../core/digest.js';
import { CodedError } from '../../core/errors.js';
import type { LayerRef } from '../../cache/index.js';
import type { HttpSourceDef, ImageSourceDef } from '../graph/index.js';
import type { OpContext, SolverDeps } from './types.js';

/** FROM: pull the pinned image's blobs into the store; snapshots are made only when a step needs them. */
export async function runImageSource(def: ImageSourceDef, ctx: OpContext): Promise<LayerRef[]> {
  const { layers } = await ctx.deps.images.pull(def.ref, def.platform, ctx.deps.store, {
    signal: ctx.opts.signal,
    onProgress: (id, current, total) =>
      ctx.opts.emit({ type: 'progress', id, action: 'pull', current, ...(total !== undefined ? { total } : {}) }),
  });
  return layers;
}

/** ADD <url>: fetch once per build into tmpDir; the content digest enters the cache key. */
export async function runHttpSource(
  def: HttpSourceDef,
  deps: SolverDeps,
  signal?: AbortSignal,
): Promise<{ path: string; digest: Digest; name?: string }> {
  if (!deps.http) throw new CodedError('PERMISSION_DENIED', `ADD ${def.url}: fetching URLs is not enabled on this builder`);
  const dir = path.join(deps.tmpDir, `http-${randomUUID()}`);
  await mkdir(dir, { mode: 0o700 });
  const file = path.join(dir, path.posix.basename(def.filename) || 'download');
  const got = await deps.http.fetchToFile(def.url, file, { ...(signal ? { signal } : {}), ...(def.checksum ? { checksum: def.checksum } : {}) });
  return { path: file, digest: got.digest, ...(def.nameFromResponse && got.filename !== undefined ? { name: got.filename } : {}) };
}
