import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import type { ZlibOptions } from 'node:zlib';
import { builtin } from '../../core/lazy-builtins.js';

/**
 * Gzip on every core, pigz-style: the input is cut at fixed offsets into
 * chunks, each chunk is deflated on libuv's thread pool with the previous
 * chunk's last 32 KiB as its dictionary and ends in a sync flush (byte
 * aligned, not final), and the pieces are concatenated in order between one
 * gzip header and one trailer. The output depends only on the bytes and the
 * options, never on timing or on how the input was split into writes, so equal
 * tars still give equal blobs.
 *
 * A chunk whose samples do not compress (random or already-compressed data)
 * is written as stored blocks: deflating it costs ~25 ms/MiB of CPU to save
 * nothing, and that is where a layer holding a compressed archive or media
 * file spends its time. The samples are many and small (16 x 2 KiB, spread
 * over the chunk) rather than few and large: a chunk of compressed members
 * with text between them (a maven repository's jars and poms, a doc tree of
 * .gz pages and copyright files) hides its text from four 8 KiB windows, and
 * storing such chunks cost 1.6-1.8 % of those layers against zlib level 6;
 * sixteen windows see it for the same probe cost (bench/results,
 * 2026-12-07-issue18-pass7.md).
 */
export interface ParallelGzipOptions {
  /** zlib level for compressible chunks, 1-9. */
  readonly level?: number;
  /** Bytes per independently deflated chunk (fixed offsets keep the output deterministic). */
  readonly chunkSize?: number;
  /** Chunks deflated at once. */
  readonly concurrency?: number;
  /** Samples taken from a chunk to decide whether it compresses. */
  readonly probeSamples?: number;
  readonly probeBytes?: number;
  /** Store a chunk when its samples, deflated together at level 1, come out above this fraction of their size. */
  readonly storeAbove?: number;
  /**
   * Told, after each chunk's output is pushed, how many input bytes the output
   * so far holds (`inputEnd`) and how long that output is (`outputEnd`, the
   * header included): whoever lent the input learns when the blob holds it.
   */
  readonly onCovered?: (inputEnd: number, outputEnd: number) => void;
}

/** The numbers of ParallelGzipOptions, all set. */
type Tuning = Required<Omit<ParallelGzipOptions, 'onCovered'>>;

export const PARALLEL_GZIP_DEFAULTS: Readonly<Tuning> = {
  level: 6,
  chunkSize: 1024 * 1024,
  concurrency: Math.max(2, availableParallelism() + 1),
  probeSamples: 16,
  probeBytes: 2 * 1024,
  storeAbove: 0.97,
};

const WINDOW = 32 * 1024;
// ID1 ID2, CM=deflate, FLG=0, MTIME=0 (no timestamp: reproducible), XFL=0, OS=3 (unix), as zlib writes it.
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);
// An empty final block with fixed codes: BFINAL=1, BTYPE=01, end-of-block.
const LAST_BLOCK = Buffer.from([0x03, 0x00]);

/**
 * One deflate on the thread pool, its output in one buffer: with zlib's
 * default 16 KiB output chunks, every 16 KiB out is a round trip through the
 * main thread, and the deflate waits while that thread hashes the layer.
 * Sized for stored blocks (5 bytes per 16 KiB of input, zlib's own bound);
 * more output than that still works, in a second buffer.
 */
function deflate(buf: Buffer, opts: ZlibOptions): Promise<Buffer> {
  const chunkSize = buf.length + 5 * Math.ceil(buf.length / 16_383) + 64;
  return new Promise((resolve, reject) =>
    builtin('node:zlib').deflateRaw(buf, { ...opts, chunkSize }, (err, out) => (err ? reject(err) : resolve(out))),
  );
}

/** The `length` bytes at `offset` of a chunk held as parts: a view when one part holds them, else a copy. */
function slice(parts: readonly Buffer[], offset: number, length: number): Buffer {
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (offset < at + p.length) {
      if (offset + length <= at + p.length) return p.subarray(offset - at, offset - at + length);
      const out = Buffer.allocUnsafe(length);
      let filled = 0;
      for (let j = i, from = offset - at; filled < length; j++, from = 0) filled += parts[j]!.copy(out, filled, from, Math.min(parts[j]!.length, from + length - filled));
      return out;
    }
    at += p.length;
  }
  return Buffer.alloc(0);
}

async function compressible(parts: readonly Buffer[], size: number, o: Tuning): Promise<boolean> {
  if (size < o.probeBytes * o.probeSamples) return true;
  const step = Math.floor((size - o.probeBytes) / Math.max(1, o.probeSamples - 1));
  const samples: Buffer[] = [];
  for (let i = 0; i < o.probeSamples; i++) samples.push(slice(parts, i * step, o.probeBytes));
  // One deflate of the samples together: each deflate sets up ~256 KiB of fresh zlib state
  // (its page faults were most of a probe's cost), and four per chunk cost ~10% of a layer.
  const probe = await deflate(Buffer.concat(samples, o.probeBytes * o.probeSamples), { level: 1 });
  return probe.length <= o.storeAbove * o.probeBytes * o.probeSamples;
}

/** Largest stored block (LEN is 16 bits). */
const MAX_STORED = 0xffff;

/**
 * Stored blocks written by us, around views of the input: zlib at level 0
 * copies each byte twice (into its window, out to a result it concatenates),
 * ~6 ms per MiB here, to add five bytes per 64 KiB. The stream is byte-aligned
 * at a chunk's start (the previous chunk ended in a sync flush, or the header),
 * so each block is one byte (BFINAL=0, BTYPE=00, padding), LEN, ~LEN, data,
 * and it stays byte-aligned after.
 */
function storedBlocks(parts: readonly Buffer[], size: number): Buffer[] {
  const out: Buffer[] = [];
  let part = 0;
  let from = 0;
  // Blocks at fixed offsets of the chunk, whatever its parts: equal bytes give equal blobs.
  for (let off = 0; off < size; off += MAX_STORED) {
    const len = Math.min(MAX_STORED, size - off);
    const head = Buffer.allocUnsafe(5);
    head[0] = 0;
    head.writeUInt16LE(len, 1);
    head.writeUInt16LE(~len & 0xffff, 3);
    out.push(head);
    for (let left = len; left > 0; ) {
      const p = parts[part]!;
      const k = Math.min(left, p.length - from);
      out.push(p.subarray(from, from + k));
      left -= k;
      from += k;
      if (from === p.length) {
        part++;
        from = 0;
      }
    }
  }
  return out;
}

async function deflateChunk(parts: readonly Buffer[], size: number, dict: Buffer | undefined, o: Tuning): Promise<Buffer[]> {
  if (!(await compressible(parts, size, o))) return storedBlocks(parts, size);
  const opts: ZlibOptions = { level: o.level, finishFlush: builtin('node:zlib').constants.Z_SYNC_FLUSH };
  if (dict) opts.dictionary = dict;
  return [await deflate(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size), opts)];
}

export class ParallelGzip extends Transform {
  private readonly o: Tuning;
  private readonly onCovered: ParallelGzipOptions['onCovered'];
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Each chunk's deflate, with the input offset its end is at. */
  private readonly inflight: Array<{ job: Promise<Buffer[]>; inputEnd: number }> = [];
  private out = 0;
  private lastTail: Buffer | undefined;
  private crc = 0;
  private total = 0;

  constructor(opts: ParallelGzipOptions = {}) {
    super();
    const { onCovered, ...rest } = opts;
    this.o = { ...PARALLEL_GZIP_DEFAULTS, ...rest };
    this.onCovered = onCovered;
    if (!(this.o.level >= 1 && this.o.level <= 9)) throw new RangeError(`gzip level must be 1-9, got ${this.o.level}`);
    this.pushOut(HEADER);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.crc = builtin('node:zlib').crc32(data, this.crc);
    this.total += data.length;
    this.pending.push(data);
    this.pendingBytes += data.length;
    this.drainFull().then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    const finish = async () => {
      const rest = this.pendingBytes;
      if (rest > 0) this.dispatch(this.takePending(rest), rest);
      while (this.inflight.length > 0) await this.pushNext();
      const trailer = Buffer.alloc(8);
      trailer.writeUInt32LE(this.crc >>> 0, 0);
      trailer.writeUInt32LE(this.total % 2 ** 32, 4);
      this.pushOut(Buffer.concat([LAST_BLOCK, trailer]));
    };
    finish().then(() => cb(), cb);
  }

  private async drainFull(): Promise<void> {
    while (this.pendingBytes >= this.o.chunkSize) {
      this.dispatch(this.takePending(this.o.chunkSize), this.o.chunkSize);
      // Bounded: at most `concurrency` chunks (in and out) held at once.
      if (this.inflight.length >= this.o.concurrency) await this.pushNext();
    }
  }

  /** The oldest chunk's output, once its deflate is done. */
  private async pushNext(): Promise<void> {
    const { job, inputEnd } = this.inflight.shift()!;
    for (const p of await job) this.pushOut(p);
    this.onCovered?.(inputEnd, this.out);
  }

  private pushOut(piece: Buffer): void {
    this.out += piece.length;
    this.push(piece);
  }

  private dispatch(parts: Buffer[], size: number): void {
    const job = deflateChunk(parts, size, this.lastTail, this.o);
    // Rejections surface when the job is awaited in order; keep Node from calling them unhandled meanwhile.
    job.catch(() => undefined);
    // The input so far less what still waits: where this chunk ends (takePending has taken it).
    this.inflight.push({ job, inputEnd: this.total - this.pendingBytes });
    const tail = Math.min(WINDOW, size);
    // A copy: the dictionary must not pin (or see reuse of) the chunk's buffers.
    this.lastTail = Buffer.from(slice(parts, size - tail, tail));
  }

  /** Exactly n bytes off the front of the pending list (n <= pendingBytes), as views of the buffers written to us. */
  private takePending(n: number): Buffer[] {
    const out: Buffer[] = [];
    let taken = 0;
    while (taken < n) {
      const head = this.pending[0]!;
      const k = Math.min(head.length, n - taken);
      out.push(k === head.length ? head : head.subarray(0, k));
      taken += k;
      if (k === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(k);
    }
    this.pendingBytes -= n;
    return out;
  }
}
