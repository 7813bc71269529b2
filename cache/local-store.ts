import { createHash, randomBytes, type Hash } from 'node:crypto';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { addAbortSignal, Writable, type Readable } from 'node:stream';
import type { BlobInfo, ContentStore, IngestWriter } from '../core/content.js';
import { digestFromHash, digestHex, isDigest, sha256, type Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { DigestMismatchError } from '../core/streams.js';
import { fsyncDir, isErrno, unlinkQuiet } from '../core/fs-util.js';
import { onceUntilDone } from '../core/retry-once.js';

/** 1 MiB reads: sha256 over 64 KiB chunks is about half as fast (shared/bench/results.md). */
export const READ_HIGH_WATER_MARK = 1 << 20;

/**
 * A content store in a local directory (containerd's local store, small):
 *
 *   <root>/blobs/sha256/<hex>             committed blobs, read-only, named by their digest
 *   <root>/ingest/<ref-hash>.<nonce>      writes in progress
 *
 * The nonce keeps two writers of one ref (two processes, or a retry racing a
 * stale writer) from ever sharing a file: a shared file could be renamed into
 * place holding bytes its writer never hashed. Leftover ingests (a crash) are
 * removed by `sweepIngests()`; they are never visible as blobs.
 */
export class LocalContentStore implements ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;

  constructor(readonly root: string) {
    this.blobsDir = join(root, 'blobs', 'sha256');
    this.ingestDir = join(root, 'ingest');
  }

  /** The file of a blob (it may not exist). Throws on a malformed digest: it could name another path. */
  blobPath(digest: Digest): string {
    if (!isDigest(digest)) throw new CodedError('INVALID_ARGUMENT', `not a sha256 digest: ${String(digest).slice(0, 80)}`);
    return join(this.blobsDir, digestHex(digest));
  }

  async ingest(ref: string, expected?: Partial<BlobInfo>): Promise<IngestWriter> {
    if (expected?.digest !== undefined && !isDigest(expected.digest)) {
      throw new CodedError('INVALID_ARGUMENT', `expected digest is malformed: ${String(expected.digest).slice(0, 80)}`);
    }
    await this.init();
    const refHash = sha256(ref).slice('sha256:'.length, 'sha256:'.length + 32);
    const path = join(this.ingestDir, `${refHash}.${randomBytes(6).toString('hex')}`);
    const handle = await open(path, 'wx', 0o600);
    return new LocalIngestWriter(this, path, handle, expected ?? {});
  }

  async open(digest: Digest, signal?: AbortSignal): Promise<Readable> {
    signal?.throwIfAborted();
    const path = this.blobPath(digest);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw notFound(digest);
      throw storeError(`open blob ${digest}`, err);
    }
    // An open fd keeps the bytes readable even if GC unlinks the name meanwhile.
    const stream = handle.createReadStream({ highWaterMark: READ_HIGH_WATER_MARK });
    return signal ? addAbortSignal(signal, stream) : stream;
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    const path = this.blobPath(digest);
    try {
      const st = await stat(path);
      return { digest, size: st.size };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw storeError(`stat blob ${digest}`, err);
    }
  }

  /** Removes a blob; removing an absent blob is not an error (GC and a user may race). */
  async delete(digest: Digest): Promise<void> {
    const path = this.blobPath(digest);
    try {
      await unlink(path);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw storeError(`delete blob ${digest}`, err);
    }
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const entry of await this.listWithTimes()) yield { digest: entry.digest, size: entry.size };
  }

  /** Blobs with their size, bytes on disk and last access/modify time, for usage and GC. */
  async listWithTimes(): Promise<Array<BlobInfo & { lastUsedAt: number; diskSize: number }>> {
    let names: string[];
    try {
      names = await readdir(this.blobsDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw storeError('list blobs', err);
    }
    const out: Array<BlobInfo & { lastUsedAt: number; diskSize: number }> = [];
    for (const name of names.sort()) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      try {
        const st = await stat(join(this.blobsDir, name));
        out.push({ digest, size: st.size, diskSize: Math.max(st.size, st.blocks * 512), lastUsedAt: Math.max(st.mtimeMs, st.atimeMs) });
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw storeError(`stat blob ${digest}`, err);
      }
    }
    return out;
  }

  /** Removes ingests older than `olderThanMs` (all of them with 0): what a crashed writer left. */
  async sweepIngests(olderThanMs = 0, now = Date.now()): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.ingestDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0;
      throw storeError('list ingests', err);
    }
    let removed = 0;
    for (const name of names) {
      const path = join(this.ingestDir, name);
      try {
        const st = await stat(path);
        if (now - st.mtimeMs < olderThanMs) continue;
        await unlink(path);
        removed++;
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw storeError(`remove ingest ${name}`, err);
      }
    }
    return removed;
  }

  /** Bytes held by ingests in progress (usage accounting). */
  async ingestBytes(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.ingestDir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0;
      throw err;
    }
    let total = 0;
    for (const name of names) {
      total += await stat(join(this.ingestDir, name)).then((s) => s.size, () => 0);
    }
    return total;
  }

  private readonly init = onceUntilDone(async () => {
    try {
      await mkdir(this.root, { recursive: true, mode: 0o700 });
      await mkdir(this.blobsDir, { recursive: true, mode: 0o700 });
      await mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw storeError(`create content store at ${this.root}`, err);
    }
  });
}

type WriterState = 'open' | 'committing' | 'committed' | 'aborted';

class LocalIngestWriter extends Writable implements IngestWriter {
  private readonly hash: Hash = createHash('sha256');
  private size = 0;
  private state: WriterState = 'open';
  private handleClosed = false;

  constructor(
    private readonly store: LocalContentStore,
    private readonly path: string,
    private readonly handle: FileHandle,
    private readonly expected: Partial<BlobInfo>,
  ) {
    super({ highWaterMark: READ_HIGH_WATER_MARK });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeChunks([chunk]).then(() => cb(), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeChunks(chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A failed pipeline destroys us; nothing can commit a destroyed writer, so drop the ingest now.
    if (err && this.state === 'open') {
      this.abort().then(() => cb(err), () => cb(err));
      return;
    }
    cb(err);
  }

  async commit(): Promise<BlobInfo> {
    if (this.state !== 'open') throw new CodedError('STORE', `ingest cannot be committed: it is ${this.state}`);
    if (this.errored || (this.destroyed && !this.writableFinished)) {
      throw new CodedError('STORE', 'ingest cannot be committed: the stream failed or was destroyed');
    }
    this.state = 'committing';
    try {
      if (!this.writableFinished) await endAndWait(this);
      await this.handle.sync();
      await this.closeHandle();
      const info: BlobInfo = { digest: digestFromHash(this.hash), size: this.size };
      const want = this.expected;
      if ((want.size !== undefined && want.size !== info.size) || (want.digest !== undefined && want.digest !== info.digest)) {
        throw new DigestMismatchError({ digest: want.digest ?? info.digest, ...(want.size !== undefined ? { size: want.size } : {}) }, info, 'blob');
      }
      const target = this.store.blobPath(info.digest);
      if (await exists(target)) {
        await unlinkQuiet(this.path);
      } else {
        await rename(this.path, target);
        await fsyncDir(this.store.blobsDir);
      }
      this.state = 'committed';
      return info;
    } catch (err) {
      this.state = 'aborted';
      await this.cleanup();
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'committed') return;
    this.state = 'aborted';
    await this.cleanup();
    if (!this.destroyed) this.destroy();
  }

  private async writeChunks(chunks: Buffer[]): Promise<void> {
    let add = 0;
    for (const c of chunks) add += c.length;
    if (this.expected.size !== undefined && this.size + add > this.expected.size) {
      // Fail early: no reason to write past what was announced.
      throw new DigestMismatchError(
        { ...(this.expected.digest !== undefined ? { digest: this.expected.digest } : {}), size: this.expected.size },
        { size: this.size + add },
        'blob',
      );
    }
    for (const c of chunks) this.hash.update(c);
    this.size += add;
    if (chunks.length === 1) await this.handle.write(chunks[0]!);
    else await this.handle.writev(chunks);
  }

  private async closeHandle(): Promise<void> {
    if (this.handleClosed) return;
    this.handleClosed = true;
    await this.handle.close();
  }

  private async cleanup(): Promise<void> {
    await this.closeHandle().catch(() => undefined);
    await unlinkQuiet(this.path);
  }
}

function endAndWait(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    w.once('error', onError);
    w.end(() => {
      w.off('error', onError);
      resolve();
    });
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

function notFound(digest: Digest): CodedError {
  return new CodedError('NOT_FOUND', `blob ${digest} not found`);
}

function storeError(what: string, cause: unknown): CodedError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new CodedError('STORE', `${what}: ${reason}`, { cause });
}
