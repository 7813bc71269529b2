import { closeSync, mkdirSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { limitPhrase } from '../../core/limit-error.js';

/** Bytes copied at a time when the kept tail is joined onto the log. */
const COPY_CHUNK = 1 << 20;

interface Segment {
  readonly file: string;
  readonly fd: number;
  bytes: number;
}

/**
 * The full log of one step on disk, bounded by `cap` (the step log limit):
 * it keeps the first half of what the step printed and its last part, and
 * says in the file how many bytes were dropped between them. The tail lives in
 * at most two segment files of a quarter of `cap` beside the log (never in
 * memory): when a third would start, the oldest goes. `close()` joins what is
 * kept onto the log. Writes are synchronous: output arrives in pipe-sized
 * chunks, and a buffered stream would queue without bound behind a step that
 * prints faster than the disk takes it.
 *
 * A write that fails (a full disk) stops the file, never the build: the
 * event stream still carries the output.
 */
export class StepLogFile {
  private fd: number | undefined;
  private headBytes = 0;
  private readonly tail: Segment[] = [];
  private dropped = 0;
  private segments = 0;
  private failed = false;
  private readonly headCap: number;
  private readonly segCap: number;

  constructor(
    readonly file: string,
    private readonly cap: number,
  ) {
    this.headCap = Math.floor(cap / 2);
    this.segCap = Math.max(1, Math.floor(cap / 4));
  }

  /** Bytes dropped so far. */
  get droppedBytes(): number {
    return this.dropped;
  }

  /** Appends `data`; returns true on the write that first drops bytes (for the caller's one notice). */
  write(data: Buffer): boolean {
    if (this.failed || data.length === 0) return false;
    const before = this.dropped;
    try {
      this.fd ??= this.open(this.file);
      let rest = data;
      if (this.headBytes < this.headCap) {
        const n = Math.min(rest.length, this.headCap - this.headBytes);
        writeAll(this.fd, rest.subarray(0, n));
        this.headBytes += n;
        rest = rest.subarray(n);
      }
      while (rest.length > 0) {
        const seg = this.segment();
        const n = Math.min(rest.length, this.segCap - seg.bytes);
        writeAll(seg.fd, rest.subarray(0, n));
        seg.bytes += n;
        rest = rest.subarray(n);
      }
    } catch {
      this.failed = true;
    }
    return before === 0 && this.dropped > 0;
  }

  /** The segment with room; a third one drops the oldest. */
  private segment(): Segment {
    const last = this.tail.at(-1);
    if (last && last.bytes < this.segCap) return last;
    if (this.tail.length === 2) {
      const old = this.tail.shift()!;
      this.dropped += old.bytes;
      closeSync(old.fd);
      unlinkSync(old.file);
    }
    const file = `${this.file}.tail-${this.segments++}`;
    const seg = { file, fd: this.open(file), bytes: 0 };
    this.tail.push(seg);
    return seg;
  }

  private open(file: string): number {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    return openSync(file, 'w', 0o600);
  }

  /** Writes the drop notice and the kept tail into the log, and removes the segments. Safe to call twice. */
  close(): void {
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (fd !== undefined && !this.failed && this.dropped > 0) {
        writeAll(fd, Buffer.from(`\n[... ${this.dropped} bytes dropped here: this step printed more than ${limitPhrase('maxStepLogBytes', this.cap)}; its first and last parts are kept ...]\n`));
      }
      const buf = Buffer.allocUnsafe(COPY_CHUNK);
      for (const seg of this.tail) {
        if (fd !== undefined && !this.failed) copyInto(seg.file, fd, buf);
      }
    } catch {
      this.failed = true;
    } finally {
      for (const seg of this.tail.splice(0)) {
        closeSync(seg.fd);
        try {
          unlinkSync(seg.file);
        } catch {
          // already gone
        }
      }
      if (fd !== undefined) closeSync(fd);
    }
  }
}

function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

function copyInto(file: string, fd: number, buf: Buffer): void {
  const src = openSync(file, 'r');
  try {
    for (let n = readSync(src, buf, 0, buf.length, null); n > 0; n = readSync(src, buf, 0, buf.length, null)) writeAll(fd, buf.subarray(0, n));
  } finally {
    closeSync(src);
  }
}
