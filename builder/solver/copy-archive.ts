import { spawn } from 'node:child_process';
import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { decompress, extractTar, headerChecksumOk, sniffCompression } from '../layers/index.js';
import { FileOpError } from './file-op-base.js';

/** Compression of a local ADD source, told by magic bytes, never by name (as Docker does). */
export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

const TAR_BLOCK = 512;

/** Magic bytes, as layers tell them; zstd is recognised here (only to say "an archive we cannot unpack"). */
function compressionOf(head: Buffer): Compression {
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return sniffCompression(head);
}

/** A tar header block with a valid checksum; an all-zero block is an empty archive, not a tar. */
function isTarHeader(block: Buffer): boolean {
  return block.length >= TAR_BLOCK && !block.subarray(0, TAR_BLOCK).every((b) => b === 0) && headerChecksumOk(block.subarray(0, TAR_BLOCK));
}

/**
 * The decompressed bytes of a regular file. gzip is in-process; bzip2, xz and
 * zstd go through the system tools (Node has no decoders for them), fed on
 * stdin so the tool never opens a path of ours.
 */
export function openDecompressed(file: string, kind: Compression, signal?: AbortSignal): Readable {
  // The caller lstat'ed `file` as a regular file inside its root; the stream reads it in 1 MiB chunks.
  const input = createReadStream(file, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
  if (kind !== 'zstd') return decompress(input, kind);
  // Node has no zstd decoder and layers refuse zstd; detection still needs to look inside.
  const child = spawn('zstd', ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
  const out = new PassThrough();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  input.on('error', (err) => out.destroy(err));
  child.on('error', (err) => out.destroy(err));
  // An early reader close (detection) is not an error: stop the tool quietly.
  child.stdin.on('error', () => {});
  input.pipe(child.stdin);
  child.stdout.pipe(out, { end: false });
  child.on('close', (code, sig) => {
    if (code === 0 || out.destroyed) out.end();
    else out.destroy(new FileOpError(`zstd -d failed (${code ?? sig}): ${stderr.trim()}`, file));
  });
  out.on('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return out;
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
  const kind = compressionOf(head);
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
