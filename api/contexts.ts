import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { digestFromHash, type Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { contextFile } from '../worker/jobs.js';

/**
 * Uploaded build contexts, content-addressed by the sha256 of the tar, in a
 * directory every worker can read. An upload is written to `ingest/` while it
 * is hashed and counted, and renamed into `sha256/<hex>.tar` only once
 * complete (DESIGN invariant 1); finding it already there counts as success.
 */
export class ContextStore {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(path.join(this.dir, 'sha256'), { recursive: true, mode: 0o700 });
    await mkdir(path.join(this.dir, 'ingest'), { recursive: true, mode: 0o700 });
  }

  async has(digest: Digest): Promise<boolean> {
    try {
      return (await stat(contextFile(this.dir, digest))).isFile();
    } catch {
      return false;
    }
  }

  /** Starts an upload bounded by `maxBytes`. */
  async ingest(maxBytes: number): Promise<ContextUpload> {
    const tmp = path.join(this.dir, 'ingest', `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    return new ContextUpload(this.dir, tmp, fh, maxBytes);
  }

  /** Removes uploads older than `olderThanMs` that a crashed API left. */
  async sweepIngests(olderThanMs = 3600_000): Promise<number> {
    let n = 0;
    const dir = path.join(this.dir, 'ingest');
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
}

export class ContextUpload {
  private readonly hash = createHash('sha256');
  private size = 0;
  private done = false;

  constructor(
    private readonly dir: string,
    private readonly tmp: string,
    private readonly fh: FileHandle,
    private readonly maxBytes: number,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    if (this.size > this.maxBytes) throw new CodedError('LIMIT_EXCEEDED', `the build context is larger than ${this.maxBytes} bytes`);
    this.hash.update(chunk);
    await this.fh.write(chunk);
  }

  get bytes(): number {
    return this.size;
  }

  async commit(): Promise<Digest> {
    if (this.size === 0) throw new CodedError('INVALID_ARGUMENT', 'the build context is empty: send a tar (an empty tar is 1024 zero bytes)');
    const digest = digestFromHash(this.hash);
    await this.fh.sync();
    await this.fh.close();
    this.done = true;
    const dest = contextFile(this.dir, digest);
    await rename(this.tmp, dest);
    return digest;
  }

  async abort(): Promise<void> {
    if (!this.done) await this.fh.close().catch(() => undefined);
    this.done = true;
    await rm(this.tmp, { force: true });
  }
}
