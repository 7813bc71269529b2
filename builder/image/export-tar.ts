import { createWriteStream } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobProvider } from '../../core/content.js';
import { diffTar } from '../layers/index.js';
import { exportLocalDir } from './export-local.js';
import type { BuiltImage } from './built-image.js';

export interface RootfsTarOptions {
  /** Scratch space on the same disk as the state: the layers are applied there first. */
  readonly tmpDir: string;
  readonly sourceDateEpoch?: number;
  readonly signal?: AbortSignal;
}

/**
 * `--output type=tar,dest=FILE`: the final root filesystem as one plain tar
 * (of a multi-platform build: each platform's under its `linux_arm64/`).
 * The layers are applied (with whiteouts, safely) into a scratch directory,
 * then the tree is streamed out in the layer writer's deterministic order, so
 * the same image gives the same tar. `dest` of `-` is standard output.
 *
 * Why not merge the layer tars directly: a hardlink or whiteout in an upper
 * layer can refer to any lower entry, and getting that right without a
 * filesystem is the bug-prone half of an overlay implementation.
 */
export async function exportRootfsTar(store: BlobProvider, built: BuiltImage, dest: string, opts: RootfsTarOptions): Promise<void> {
  const scratch = await mkdtemp(path.join(opts.tmpDir, 'rootfs-'));
  const tmp = dest === '-' ? undefined : `${dest}.tmp-${process.pid}`;
  try {
    // An index gives one top directory per platform, as the local output does (and buildx's tar).
    await exportLocalDir(store, built, scratch, opts.signal);
    const body = Readable.from(
      diffTar(scratch, { ...(opts.sourceDateEpoch !== undefined ? { sourceDateEpoch: opts.sourceDateEpoch } : {}), signal: opts.signal }),
      { objectMode: false },
    );
    if (tmp === undefined) {
      await pipeline(body, process.stdout, { end: false, ...(opts.signal ? { signal: opts.signal } : {}) });
      return;
    }
    await pipeline(body, createWriteStream(tmp, { mode: 0o644 }), opts.signal ? { signal: opts.signal } : {});
    await rename(tmp, dest);
  } catch (err) {
    if (tmp) await rm(tmp, { force: true });
    throw err;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
