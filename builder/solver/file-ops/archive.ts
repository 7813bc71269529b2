import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { decompress, extractTar, headerChecksumOk, sniffCompression, type Compression } from '../../layers/index.js';

const TAR_BLOCK = 512;

/** A tar header block with a valid checksum; an all-zero block is an empty archive, not a tar. */
function isTarHeader(block: Buffer): boolean {
  return block.length >= TAR_BLOCK && !block.subarray(0, TAR_BLOCK).every((b) => b === 0) && headerChecksumOk(block.subarray(0, TAR_BLOCK));
}

/** The decompressed bytes of a regular file (compression told by magic bytes, never by name, as Docker does). */
function openDecompressed(file: string, kind: Compression, signal?: AbortSignal): Readable {
  // The caller lstat'ed `file` as a regular file inside its root; the stream reads it in 1 MiB chunks.
  return decompress(createReadStream(file, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) }), kind);
}

/** The compression of `file` when it is a tar archive (plain or compressed), else undefined. `file` must be a regular file (lstat first). */
export async function detectArchive(file: string, signal?: AbortSignal): Promise<Compression | undefined> {
  // O_NONBLOCK: should a FIFO be swapped in after the caller's lstat, opening must not hang.
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  let head: Buffer;
  try {
    if (!(await fh.stat()).isFile()) return undefined;
    const buf = Buffer.alloc(TAR_BLOCK);
    const { bytesRead } = await fh.read(buf, 0, TAR_BLOCK, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const kind = sniffCompression(head);
  if (kind === 'none') return isTarHeader(head) ? 'none' : undefined;
  const first = await readPrefix(openDecompressed(file, kind, signal), TAR_BLOCK).catch(() => Buffer.alloc(0));
  return isTarHeader(first) ? kind : undefined;
}

async function readPrefix(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= n) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, n);
}

/**
 * ADD of a local archive: unpack into `destDir` (a real directory inside the
 * root), modes as in the archive; owners too, unless `--chown` gave `owner`,
 * which then owns every entry (as in BuildKit).
 */
export async function extractArchive(file: string, destDir: string, owner: { uid: number; gid: number } | undefined, signal?: AbortSignal): Promise<void> {
  // extractTar recognises the compression itself; it gets the raw bytes.
  const stream = openDecompressed(file, 'none', signal);
  try {
    await extractTar(stream, destDir, { whiteouts: false, ...(owner ? { owner } : {}), ...(signal ? { signal } : {}) });
  } finally {
    stream.destroy();
  }
}
