import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import type { Digest } from '../../core/digest.js';
import { DigestMismatchError, HashingTap, LimitExceededError, meterBytes } from '../../core/streams.js';
import { compressionOfMediaType, decompress, peek, sniffCompression } from './decompress.js';
import { Extractor, type ExtractLimits, type ExtractOptions } from './extract.js';
import { readTar } from './tar-reader.js';

export interface ApplyLimits extends ExtractLimits {
  /** Uncompressed bytes of one archive (default 64 GiB). */
  readonly maxBytes?: number;
  /** The error past `maxBytes` (default a LimitExceededError naming the archive): a caller's limit names itself. */
  readonly tooLarge?: (max: number) => Error;
}

export interface ApplyOptions {
  /** The layer's diff id from the image config; a mismatch fails with DigestMismatchError. */
  readonly expectedDiffId?: Digest;
  readonly limits?: ApplyLimits;
  readonly signal?: AbortSignal;
  readonly onWarning?: (message: string) => void;
  /** Shown the uncompressed bytes as they are read, before they are written; a throw stops the extraction. */
  readonly meter?: (total: number, chunk: number) => void;
}

const DEFAULT_MAX_BYTES = 64 * 1024 ** 3;

/**
 * Applies a layer blob onto `targetDir`: the merged view of a freshly
 * prepared snapshot (so overlay records deletions as its own whiteouts) or a
 * plain directory. Decompresses by media type (gzip in-process, zstd through the zstd tool, or none),
 * hashes the tar as it streams to get the diff id, and checks it.
 *
 * The diff id is only known at the end, so on a mismatch the files are already
 * written: the caller must discard the snapshot (it was fresh for this reason).
 */
export async function applyLayer(
  compressed: Readable,
  mediaType: string,
  targetDir: string,
  opts: ApplyOptions = {},
): Promise<{ diffId: Digest; size: number }> {
  let compression;
  try {
    compression = compressionOfMediaType(mediaType);
  } catch (err) {
    compressed.destroy();
    throw err;
  }
  const result = await extractStream(decompress(compressed, compression), targetDir, { ...opts, whiteouts: true });
  if (opts.expectedDiffId !== undefined && result.diffId !== opts.expectedDiffId) {
    throw new DigestMismatchError({ digest: opts.expectedDiffId }, { digest: result.diffId, size: result.size }, 'layer diff id');
  }
  return result;
}

/** The extractor's options, with the archive-wide byte limit and meter on top. */
export interface ExtractTarOptions extends ExtractOptions {
  readonly limits?: ApplyLimits;
  readonly meter?: (total: number, chunk: number) => void;
}

/**
 * Extracts a tar (plain, gzip, bzip2, xz or zstd, recognised by magic bytes)
 * into `destDir` with the same safety as layer application. Used by ADD of
 * local archives; modes are kept, and owners unless `owner` replaces them.
 */
export async function extractTar(
  tar: Readable,
  destDir: string,
  opts: ExtractTarOptions,
): Promise<{ diffId: Digest; size: number; entries: number }> {
  const { head, stream } = await peek(tar, 6);
  return extractStream(decompress(stream, sniffCompression(head)), destDir, opts);
}

async function extractStream(
  plain: Readable,
  destDir: string,
  opts: ExtractTarOptions,
): Promise<{ diffId: Digest; size: number; entries: number }> {
  const tap = new HashingTap();
  const max = opts.limits?.maxBytes ?? DEFAULT_MAX_BYTES;
  const tooLarge = opts.limits?.tooLarge ?? ((n: number) => new LimitExceededError(`uncompressed archive is larger than the limit of ${n} bytes`));
  const bound = meterBytes((total, chunk) => {
    if (total > max) throw tooLarge(max);
    opts.meter?.(total, chunk);
  });
  const bounded = pipeline(plain, tap, bound, () => undefined);
  const onAbort = () => bounded.destroy(opts.signal?.reason as Error);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const { entries } = await new Extractor(destDir, opts).run(readTar(bounded));
    return { diffId: tap.digest(), size: tap.size, entries };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    bounded.destroy();
  }
}
