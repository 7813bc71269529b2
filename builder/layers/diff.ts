import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { Mount } from '../../core/mount.js';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import type { ChunkLoans } from './chunk-pool.js';
import { cmp, END_OF_ARCHIVE } from './tar-format.js';
import { devNumbers, headerFromStat, TarChunks, type HeaderOptions } from './tar-writer.js';
import { OPAQUE_XATTR, readTreeXattrs, USER_OPAQUE_XATTR, type TreeXattrs } from './xattrs.js';

export class LayerSourceError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
}

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

/**
 * The directory holding a snapshot's own changes: overlay's `upperdir=`, or
 * the source of the bind mount a parentless snapshot is.
 */
export function upperDirOf(mounts: readonly Mount[]): string {
  if (mounts.length !== 1) throw new LayerSourceError(`want exactly one mount to diff, got ${mounts.length}`);
  const m = mounts[0]!;
  if (m.type === 'bind') return m.source;
  if (m.type === 'overlay') {
    const upper = m.options.find((o) => o.startsWith('upperdir='));
    if (upper) return upper.slice('upperdir='.length);
    throw new LayerSourceError('overlay mount has no upperdir: a read-only view has no changes to diff');
  }
  throw new LayerSourceError(`cannot diff a ${m.type} mount`);
}

/** The xattrs of the upper dir of `mounts`, with overlay's opaque marks read in the namespace that mount writes them in. */
export function readUpperXattrs(mounts: readonly Mount[], signal?: AbortSignal): Promise<TreeXattrs> {
  const upper = upperDirOf(mounts);
  const userxattr = mounts[0]!.type === 'overlay' && mounts[0]!.options.includes('userxattr');
  return readTreeXattrs(upper, signal, userxattr ? USER_OPAQUE_XATTR : OPAQUE_XATTR);
}

export interface DiffOptions extends HeaderOptions {
  readonly signal?: AbortSignal | undefined;
  /** Xattrs of `upper` already read by the caller; read here when absent. */
  readonly xattrs?: TreeXattrs | undefined;
  /** Where the tar's chunks come from and go back to (writeLayer); fresh buffers when absent. */
  readonly loans?: ChunkLoans | undefined;
}

/**
 * The upper dir as an OCI layer tar, streamed. Order is a depth-first walk
 * with each directory's children in UTF-8 byte order: deterministic, and
 * every parent precedes its children. Overlay whiteouts (char 0:0) become
 * `.wh.NAME`; an opaque directory is followed by its `.wh..wh..opq` marker.
 * Files sharing an inode become hardlinks to the first path written.
 * Sockets are skipped (they cannot be archived, and mean nothing in an image).
 */
export async function* diffTar(upper: string, opts: DiffOptions = {}): AsyncGenerator<Buffer> {
  const xattrs = opts.xattrs ?? (await readTreeXattrs(upper, opts.signal));
  const firstPathOfInode = new Map<string, string>();
  // Chunks of the tar leave as they fill (TarChunks): a yield is ~1 MiB, not one per piece.
  const out = new TarChunks(opts.loans);

  async function* walk(dir: string, rel: string): AsyncGenerator<Buffer> {
    // Synchronous metadata calls: a diff is thousands of tiny stats, and an await each
    // (a thread-pool round trip) cost more than the stats themselves.
    const names = readdirSync(dir).sort(cmp);
    for (const name of names) {
      opts.signal?.throwIfAborted();
      const host = path.join(dir, name);
      const relName = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(host, { bigint: true });
      const attrs = xattrs.attrs.get(host);
      const extra = attrs ? { xattrs: attrs } : {};
      if (st.isCharacterDevice() && st.rdev === 0n) {
        const wh = rel === '' ? `${WHITEOUT_PREFIX}${name}` : `${rel}/${WHITEOUT_PREFIX}${name}`;
        yield* out.entry(headerFromStat(st, wh, 'file', opts));
      } else if (st.isDirectory()) {
        yield* out.entry(headerFromStat(st, `${relName}/`, 'dir', opts, extra));
        if (xattrs.opaque.has(host)) yield* out.entry(headerFromStat(st, `${relName}/${OPAQUE_MARKER}`, 'file', opts));
        yield* walk(host, relName);
      } else if (st.isFile()) {
        const inode = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1n ? firstPathOfInode.get(inode) : undefined;
        if (first !== undefined) {
          yield* out.entry(headerFromStat(st, relName, 'hardlink', opts, { ...extra, linkname: first }));
        } else {
          if (st.nlink > 1n) firstPathOfInode.set(inode, relName);
          yield* out.entry(headerFromStat(st, relName, 'file', opts, { ...extra, size: Number(st.size) }), host);
        }
      } else if (st.isSymbolicLink()) {
        yield* out.entry(headerFromStat(st, relName, 'symlink', opts, { linkname: readlinkSync(host) }));
      } else if (st.isFIFO()) {
        yield* out.entry(headerFromStat(st, relName, 'fifo', opts, extra));
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const type = st.isCharacterDevice() ? 'char' : 'block';
        yield* out.entry(headerFromStat(st, relName, type, opts, { ...extra, ...devNumbers(st.rdev) }));
      }
      // Sockets: skipped on purpose.
    }
  }

  yield* walk(upper, '');
  yield* out.put(END_OF_ARCHIVE);
  yield* out.end();
}
