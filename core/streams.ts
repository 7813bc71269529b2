import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { formatBytes } from './bytes.js';
import type { Digest } from './digest.js';
import { BuildliteError, type ErrorCode } from './errors.js';

export class DigestMismatchError extends BuildliteError {
  readonly code: ErrorCode = 'DIGEST_MISMATCH';
  constructor(
    /** What was announced: an ingest may be told only a size. */
    readonly want: { digest?: Digest; size?: number },
    readonly got: { digest?: Digest; size: number },
    what = 'content',
  ) {
    super(
      want.size !== undefined && got.size !== want.size
        ? `${what} ${want.digest ?? '(digest not given)'}: size mismatch, want ${want.size} bytes, got ${got.size}`
        : `${what}: digest mismatch, want ${want.digest}, got ${got.digest ?? 'unknown'}`,
    );
  }
  override details() {
    return { want: this.want.digest ?? '', got: this.got.digest ?? '', bytes: this.got.size };
  }
}

export class LimitExceededError extends BuildliteError {
  readonly code: ErrorCode = 'LIMIT_EXCEEDED';
}

/**
 * A pass-through that hashes and counts, and fails at end of stream when the
 * bytes do not match the descriptor, so a downstream ingest aborts instead of
 * committing. It also fails early once more bytes than announced arrive.
 */
export function verifyDigest(want: { digest: Digest; size?: number }, what = 'blob'): Transform {
  const hash = createHash('sha256');
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      size += chunk.length;
      if (want.size !== undefined && size > want.size) {
        cb(new DigestMismatchError(want, { size }, what));
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      const got = `sha256:${hash.digest('hex')}` as Digest;
      if ((want.size !== undefined && size !== want.size) || got !== want.digest) {
        cb(new DigestMismatchError(want, { digest: got, size }, what));
        return;
      }
      cb();
    },
  });
}

/** Fails once more than `max` bytes pass: bounds what an untrusted peer can make us hold or write. */
export function limitBytes(max: number, what: string): Transform {
  return meterBytes((total) => {
    if (total > max) throw new LimitExceededError(`${what} is larger than the limit of ${max} bytes`);
  });
}

/**
 * A pass-through that shows `check` the running total and the size of each
 * chunk before passing it on; whatever `check` throws fails the stream, so the
 * bytes past a bound never reach the writer downstream.
 */
export function meterBytes(check: (total: number, chunk: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      try {
        check(total, chunk.length);
      } catch (err) {
        cb(err as Error);
        return;
      }
      cb(null, chunk);
    },
  });
}

/** A tap that hashes and counts what passes through; read `digest()` and `size` after the end. */
export class HashingTap extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  private result?: Digest;
  constructor(private readonly onProgress?: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    this.hash.update(chunk);
    this.onProgress?.(this.size);
    cb(null, chunk);
  }
  digest(): Digest {
    this.result ??= `sha256:${this.hash.digest('hex')}` as Digest;
    return this.result;
  }
}

/** Read a whole small stream into memory, failing past `max` bytes. Only for JSON documents. */
export async function readAllBounded(
  stream: AsyncIterable<Buffer | Uint8Array | string>,
  max: number,
  what: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    size += b.length;
    if (size > max) throw new LimitExceededError(`${what} is larger than the limit of ${formatBytes(max)}`);
    chunks.push(b);
  }
  return Buffer.concat(chunks, size);
}
