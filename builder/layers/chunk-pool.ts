/**
 * Buffers for the layer tar, used again once nothing reads them. On this
 * kind of machine (a VM) the first touch of fresh memory costs more than the
 * work done in it: reading 16 MiB of file into new 1 MiB buffers took 50 ms,
 * into one reused buffer 5.5 ms (each new 4 KiB page is a fault, ~11 µs
 * here). A new buffer per chunk paid that for every MiB of every layer, since
 * V8 frees a Buffer's memory only when it collects it, long after the chunk
 * is written.
 */
export class ChunkPool {
  private readonly free: Buffer[] = [];
  /** Buffers handed out again (tests and benchmarks read it). */
  reused = 0;

  constructor(
    readonly chunkSize: number,
    /** Most idle buffers kept; more in flight is fine, they are simply not kept. */
    private readonly keep: number,
  ) {}

  take(): Buffer {
    const b = this.free.pop();
    if (b === undefined) return Buffer.allocUnsafeSlow(this.chunkSize);
    this.reused++;
    return b;
  }

  give(b: Buffer): void {
    if (b.length === this.chunkSize && this.free.length < this.keep) this.free.push(b);
  }
}

/**
 * One layer write's loans from the pool, and when each may return: a chunk
 * of tar is free once the blob bytes made from it are written (the store's
 * write callback), since until then a view of it may still wait in the
 * gzip's output or the writer's queue. Offsets only grow: the tar, the
 * gzip and the writer all keep order.
 *
 * Without gzip the blob is the tar (`mapsBlobToTar` false), so a written
 * offset is a tar offset; with it, the gzip reports after each piece of
 * output which tar offset the output so far covers.
 */
export class ChunkLoans {
  private readonly lent: Array<{ end: number; buf: Buffer }> = [];
  private readonly marks: Array<{ tarEnd: number; blobEnd: number }> = [];
  private tarBytes = 0;
  private blobWritten = 0;

  constructor(
    private readonly pool: ChunkPool,
    private readonly mapsBlobToTar: boolean,
  ) {}

  take(): Buffer {
    return this.pool.take();
  }

  /** A buffer taken and never written to. */
  unused(buf: Buffer): void {
    this.pool.give(buf);
  }

  /** `buf` leaves as the next `bytes` bytes of tar. */
  lend(buf: Buffer, bytes: number): void {
    this.tarBytes += bytes;
    this.lent.push({ end: this.tarBytes, buf });
  }

  /** From the gzip: the blob's first `blobEnd` bytes hold the tar's first `tarEnd`. */
  covered(tarEnd: number, blobEnd: number): void {
    this.marks.push({ tarEnd, blobEnd });
  }

  /** From the writer: `bytes` more bytes of blob are written. */
  written(bytes: number): void {
    this.blobWritten += bytes;
    let tarDone = 0;
    if (!this.mapsBlobToTar) tarDone = this.blobWritten;
    else {
      while (this.marks.length > 0 && this.marks[0]!.blobEnd <= this.blobWritten) tarDone = this.marks.shift()!.tarEnd;
    }
    while (this.lent.length > 0 && this.lent[0]!.end <= tarDone) this.pool.give(this.lent.shift()!.buf);
  }
}
