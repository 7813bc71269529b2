import { closeSync, constants, openSync, readSync, type BigIntStats } from 'node:fs';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
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

// 1 MiB reads: half the syscalls and hash calls of 256 KiB, and whole chunks for the parallel gzip.
const CHUNK = 1024 * 1024;

/**
 * One entry: its header, then for regular files exactly `size` bytes read
 * without following symlinks, then padding. A file that shrank while being
 * read fails the layer rather than writing a tar that lies about its size.
 */
export async function* entryBytes(h: TarHeader, hostPath?: string): AsyncGenerator<Buffer> {
  yield encodeHeader(h);
  if (h.type !== 'file' || h.size === 0 || hostPath === undefined) return;
  // Synchronous reads: most layer files are small, and an await per open/read/close
  // (thread-pool round trips) dominated layers of many small files.
  const fd = openSync(hostPath, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    let remaining = h.size;
    while (remaining > 0) {
      // A fresh buffer per chunk: downstream (gzip) may still hold the last one.
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, remaining));
      const bytesRead = readSync(fd, buf, 0, buf.length, null);
      if (bytesRead === 0) throw new LayerChangedError(`${hostPath} shrank while it was being archived`);
      remaining -= bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    closeSync(fd);
  }
  yield padding(h.size);
}
