import { createHash } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';
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

/**
 * A destination that hands each piece on to `writer`, which it never ends,
 * and tells `onWritten` the piece's size once the writer is done with it (the
 * writer's write callback, which Node calls in order). For a source that
 * reuses a buffer once what was made of it is written (the layer tar's
 * chunks). Pieces go on as fast as the writer takes them, so it still writes
 * what queued up as one; this finishes once every piece is written, and the
 * writer's error is its.
 */
export class AckedWrites extends Writable {
  private pending = 0;
  private allWritten: (() => void) | undefined;

  constructor(
    private readonly writer: Writable,
    private readonly onWritten: (bytes: number) => void,
  ) {
    super();
    writer.on('error', (err) => this.destroy(err));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.pending++;
    const more = this.writer.write(chunk, (err) => {
      this.pending--;
      // An error also reaches us as the writer's 'error' event.
      if (err) return;
      this.onWritten(chunk.length);
      if (this.pending === 0) this.allWritten?.();
    });
    if (more) cb();
    else this.writer.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.pending === 0) cb();
    else this.allWritten = () => cb();
  }
}
