import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { BuildliteError, type ErrorCode } from '../../core/errors.js';
import { builtin } from '../../core/lazy-builtins.js';

export class UnsupportedMediaTypeError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
}

export type Compression = 'gzip' | 'bzip2' | 'xz' | 'zstd' | 'none';

/** The compression a layer media type names. */
export function compressionOfMediaType(mediaType: string): Compression {
  const mt = mediaType.toLowerCase();
  if (mt.endsWith('+zstd') || mt.endsWith('.zstd')) return 'zstd';
  if (mt.endsWith('+gzip') || mt.endsWith('.tar.gzip')) return 'gzip';
  if (mt.endsWith('.tar') || mt.endsWith('v1.tar')) return 'none';
  throw new UnsupportedMediaTypeError(`not a layer media type: ${mediaType.slice(0, 200)}`);
}

/** Compression from magic bytes, for local archives given to ADD. */
export function sniffCompression(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** Reads the first bytes of a stream and gives back a stream with them put back. */
export async function peek(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = input[Symbol.asyncIterator]();
  const chunks: Buffer[] = [];
  let size = 0;
  while (size < n) {
    const r = await it.next();
    if (r.done) break;
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    chunks.push(c);
    size += c.length;
  }
  const head = Buffer.concat(chunks);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value as Buffer;
    }
  }
  const stream = Readable.from(rest(), { objectMode: false });
  stream.once('close', () => input.destroy());
  return { head: head.subarray(0, n), stream };
}

/**
 * The decompressed bytes. gzip in-process; bzip2, xz and zstd through
 * `bzip2 -dc`, `xz -dc` and `zstd -dc` (Node 20 has no decoders for them;
 * stdio only, no shell), their failure surfacing as a stream error.
 */
export function decompress(input: Readable, compression: Compression): Readable {
  if (compression === 'none') return input;
  if (compression === 'gzip') {
    const gunzip = builtin('node:zlib').createGunzip();
    return pipeline(input, gunzip, () => undefined);
  }
  const child = builtin('node:child_process').spawn(compression, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 2000) stderr += d;
  });
  pipeline(input, child.stdin, (err) => {
    if (err && !out.destroyed) out.destroy(err);
  });
  child.stdout.pipe(out, { end: false });
  child.on('error', (err: NodeJS.ErrnoException) => {
    const missing = err.code === 'ENOENT' ? `: ${compression} data needs the ${compression} tool on this host (Debian: apt-get install ${compression})` : `: ${err.message}`;
    out.destroy(new UnsupportedMediaTypeError(`cannot decompress ${compression}${missing}`, { cause: err }));
  });
  child.on('close', (code) => {
    if (code === 0) out.end();
    else out.destroy(new UnsupportedMediaTypeError(`${compression} decompression failed: ${stderr.trim().slice(0, 300)}`));
  });
  out.once('close', () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    input.destroy();
  });
  return out;
}
