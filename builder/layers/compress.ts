import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { IngestWriter, Ingester } from '../../core/content.js';
import type { Digest } from '../../core/digest.js';
import type { Mount } from '../../core/mount.js';
import { MediaType } from '../../core/oci.js';
import { DigestMismatchError, HashingTap, meterBytes, AckedWrites } from '../../core/streams.js';
import { ChunkLoans, ChunkPool } from './chunk-pool.js';
import { diffTar, upperDirOf } from './diff.js';
import { ParallelGzip } from './gzip-parallel.js';
import { TAR_CHUNK } from './tar-writer.js';
import type { TreeXattrs } from './xattrs.js';

export interface LayerDescriptor {
  readonly mediaType: string;
  /** Digest of the blob as stored and pushed (compressed). */
  readonly digest: Digest;
  readonly size: number;
  /** Digest of the uncompressed tar (the image config's rootfs.diff_ids). */
  readonly diffId: Digest;
  /** Bytes of the uncompressed tar: the layer's unpacked size. */
  readonly unpackedSize: number;
}

/** Shown each chunk's running total; a throw fails the write, so the blob is never committed. */
export type ByteCheck = (total: number, chunk: number) => void;

export interface WriteLayerOptions {
  readonly sourceDateEpoch?: number;
  /** `none` writes a plain tar (digest = diffId). */
  readonly compression?: 'gzip' | 'none';
  readonly level?: number;
  readonly signal?: AbortSignal;
  /** The upper dir's xattrs when the caller has read them already (one getfattr per step). */
  readonly xattrs?: TreeXattrs;
  /** Checks on the bytes as they are made: the tar (unpacked) and the blob (as stored). */
  readonly meter?: { readonly tar?: ByteCheck; readonly blob?: ByteCheck };
}

/**
 * Tar chunks kept between layer writes: about what one write has in flight
 * (the gzip's chunks and the writer's queue), so a build's layers after the
 * first are read into memory already touched. Several writes at once share it.
 */
const chunkPool = new ChunkPool(TAR_CHUNK, 8);

/** @internal For tests: how often a layer write took a buffer back from the pool. */
export function layerChunksReused(): number {
  return chunkPool.reused;
}

/**
 * Diffs a prepared snapshot's upper dir into a layer blob in the ingester, in
 * one streaming pass: tar → hash (diffId) → parallel gzip → ingest (which
 * hashes the blob itself: a second hash here would cost ~0.5 s per 200 MiB).
 * The gzip has no name and mtime 0 and cuts chunks at fixed offsets, so equal
 * tars give equal blobs.
 * Returns null when the snapshot has no changes. The ingest is aborted on any
 * failure, so no partial blob is ever committed.
 */
export async function writeLayer(
  mounts: readonly Mount[],
  ingester: Ingester,
  opts: WriteLayerOptions = {},
): Promise<LayerDescriptor | null> {
  const upper = upperDirOf(mounts);
  if ((await readdir(upper)).length === 0) return null;
  const gzip = (opts.compression ?? 'gzip') === 'gzip';
  const loans = new ChunkLoans(chunkPool, gzip);
  const tar = Readable.from(diffTar(upper, { sourceDateEpoch: opts.sourceDateEpoch, signal: opts.signal, xattrs: opts.xattrs, loans }), {
    objectMode: false,
  });
  const diffTap = new HashingTap();
  const stages: Transform[] = [diffTap];
  if (opts.meter?.tar) stages.push(meterBytes(opts.meter.tar));
  if (gzip) stages.push(new ParallelGzip({ ...(opts.level !== undefined ? { level: opts.level } : {}), onCovered: (tarEnd, blobEnd) => loans.covered(tarEnd, blobEnd) }));
  if (opts.meter?.blob) stages.push(meterBytes(opts.meter.blob));
  const writer: IngestWriter = await ingester.ingest(`layer-${randomUUID()}`);
  try {
    // The writer's callbacks say when a tar chunk's bytes are on their way to disk and its buffer can serve again.
    await pipeline([tar, ...stages, new AckedWrites(writer, (n) => loans.written(n))], opts.signal ? { signal: opts.signal } : {});
    const info = await writer.commit();
    const { digest, size } = info;
    if (!gzip && (info.digest !== diffTap.digest() || info.size !== diffTap.size)) {
      throw new DigestMismatchError({ digest: diffTap.digest(), size: diffTap.size }, info, 'layer blob');
    }
    return {
      mediaType: gzip ? MediaType.OciLayerGzip : MediaType.OciLayer,
      digest,
      size,
      diffId: diffTap.digest(),
      unpackedSize: diffTap.size,
    };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
