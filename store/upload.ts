import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { digestFromHash } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import type { BlobUpload, StoredBlob } from './service-store.js';

export const STORE_DEFAULTS = {
  // An upload older than this was left by a crashed process: no live upload takes an hour to stall.
  staleIngestMs: 3600_000,
} as const;

/**
 * An upload written to a private temp file while it is hashed and counted.
 * `finish` is what the backing does with the complete file.
 */
export class SpooledUpload implements BlobUpload {
  private readonly hash = createHash('sha256');
  private size = 0;
  private closed = false;

  private constructor(
    private readonly tmp: string,
    private readonly fh: FileHandle,
    private readonly maxBytes: number,
    private readonly what: string,
    private readonly finish: (tmp: string, blob: StoredBlob) => Promise<void>,
  ) {}

  static async create(dir: string, maxBytes: number, what: string, finish: (tmp: string, blob: StoredBlob) => Promise<void>): Promise<SpooledUpload> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    return new SpooledUpload(tmp, await open(tmp, 'wx', 0o600), maxBytes, what, finish);
  }

  async write(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    if (this.size > this.maxBytes) throw new CodedError('LIMIT_EXCEEDED', `the ${this.what} is larger than ${this.maxBytes} bytes`);
    this.hash.update(chunk);
    await this.fh.write(chunk);
  }

  get bytes(): number {
    return this.size;
  }

  async commit(): Promise<StoredBlob> {
    const blob = { digest: digestFromHash(this.hash), size: this.size };
    await this.fh.sync();
    await this.fh.close();
    this.closed = true;
    try {
      await this.finish(this.tmp, blob);
    } finally {
      await rm(this.tmp, { force: true });
    }
    return blob;
  }

  async abort(): Promise<void> {
    if (!this.closed) await this.fh.close().catch(() => undefined);
    this.closed = true;
    await rm(this.tmp, { force: true });
  }
}

/** Removes uploads a crashed process left in `dir`. */
export async function sweepStaleUploads(dir: string, olderThanMs: number = STORE_DEFAULTS.staleIngestMs): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const p = path.join(dir, name);
    const st = await stat(p).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs >= olderThanMs) {
      await rm(p, { force: true });
      n++;
    }
  }
  return n;
}

