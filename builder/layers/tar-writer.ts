import { closeSync, constants, openSync, readSync, type BigIntStats } from 'node:fs';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import type { ChunkLoans } from './chunk-pool.js';
import { encodeHeader, padding, type TarHeader, type TarType } from './tar-format.js';

export class LayerChangedError extends BuildliteError {
  readonly code: ErrorCode = 'INTERNAL';
}

export interface HeaderOptions {
  /** SOURCE_DATE_EPOCH: mtimes later than this are clamped down to it. */
  readonly sourceDateEpoch?: number | undefined;
}

/**
 * A normalized header from lstat data: numeric ids only, permission and
 * setuid/setgid/sticky bits, whole-second mtime clamped to SOURCE_DATE_EPOCH.
 */
export function headerFromStat(
  st: BigIntStats,
  name: string,
  type: TarType,
  opts: HeaderOptions,
  extra: Partial<TarHeader> = {},
): TarHeader {
  const mtime = Number(st.mtimeMs / 1000n);
  return {
    name,
    type,
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: 0,
    mtime: opts.sourceDateEpoch !== undefined ? Math.min(mtime, opts.sourceDateEpoch) : mtime,
    ...extra,
  };
}

/** Major/minor of a Linux dev_t (glibc's gnu_dev_major/minor). */
export function devNumbers(rdev: bigint): { devmajor: number; devminor: number } {
  return {
    devmajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    devminor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
  };
}

/**
 * The tar stream in 1 MiB chunks. A layer of many small files is tens of
 * thousands of pieces (a header, a few bytes, padding), and each piece that
 * travels alone costs more in the streams after it (hashing, metering, gzip,
 * the store) than reading it did: 5,000 files of ~2 KiB took ~600 ms to
 * archive, their syscalls ~110 ms. So headers, padding and file bytes are
 * written into one buffer, file bytes read straight into it, and only full
 * chunks leave; big files fill chunk after chunk the same way (1 MiB reads).
 * A chunk, once handed out, is not written again until `loans` (when given)
 * says the blob made from it is written: downstream may still hold it.
 */
export class TarChunks {
  private buf: Buffer;
  private used = 0;

  constructor(private readonly loans?: ChunkLoans) {
    this.buf = this.fresh();
  }

  /**
   * One entry: its header, then for regular files exactly `size` bytes read
   * without following symlinks, then padding; yields each chunk it fills. A
   * file that shrank while being read fails the layer rather than writing a
   * tar that lies about its size.
   */
  *entry(h: TarHeader, hostPath?: string): Generator<Buffer> {
    yield* this.put(encodeHeader(h));
    if (h.type !== 'file' || h.size === 0 || hostPath === undefined) return;
    const fd = openSync(hostPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      let remaining = h.size;
      while (remaining > 0) {
        if (this.used === TAR_CHUNK) yield this.next();
        const n = readSync(fd, this.buf, this.used, Math.min(remaining, TAR_CHUNK - this.used), null);
        if (n === 0) throw new LayerChangedError(`${hostPath} shrank while it was being archived`);
        this.used += n;
        remaining -= n;
      }
    } finally {
      closeSync(fd);
    }
    yield* this.put(padding(h.size));
  }

  /** Appends bytes as they are (the end-of-archive blocks); yields each chunk it fills. */
  *put(bytes: Buffer): Generator<Buffer> {
    let at = 0;
    while (at < bytes.length) {
      if (this.used === TAR_CHUNK) yield this.next();
      const n = bytes.copy(this.buf, this.used, at);
      this.used += n;
      at += n;
    }
  }

  /** The last chunk: what was written since the last full one. */
  *end(): Generator<Buffer> {
    if (this.used > 0) yield this.next(true);
    else this.loans?.unused(this.buf);
  }

  private next(last = false): Buffer {
    const full = this.buf;
    const chunk = this.used === TAR_CHUNK ? full : full.subarray(0, this.used);
    this.loans?.lend(full, this.used);
    // After the last chunk nothing is written: no buffer to take (it would never go back).
    if (!last) this.buf = this.fresh();
    this.used = 0;
    return chunk;
  }

  private fresh(): Buffer {
    return this.loans ? this.loans.take() : Buffer.allocUnsafe(TAR_CHUNK);
  }
}

// 1 MiB: whole chunks for the parallel gzip, and few hash and stream calls.
export const TAR_CHUNK = 1024 * 1024;
