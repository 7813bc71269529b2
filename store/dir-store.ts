/**
 * The service store's directory backing (`--contexts DIR`), for an API and
 * workers that share a machine or a volume. The interface and its
 * vocabulary: service-store.ts; the choice of backing: open.ts.
 *
 * A directory keeps each blob under its digest and dates its last use as the
 * file's mtime.
 */
import { createReadStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { parseDigest, type Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { verifyDigest } from '../core/streams.js';
import type { BlobUpload, ServiceStore, StoredKind } from './service-store.js';
import { SpooledUpload, sweepStaleUploads } from './upload.js';

/** Where a stored blob lives in a directory store (contexts keep the layout of the first version). */
export function storedFile(dir: string, kind: StoredKind, digest: Digest): string {
  const hex = digest.slice('sha256:'.length);
  return kind === 'context' ? path.join(dir, 'sha256', `${hex}.tar`) : path.join(dir, 'logs', 'sha256', `${hex}.log`);
}

/** A directory every process of the service mounts (docs/architecture.md, invariant 1: ingest, verify, rename). */
export class DirStore implements ServiceStore {
  constructor(
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  get location(): string {
    return this.dir;
  }

  async init(): Promise<void> {
    for (const sub of ['sha256', 'ingest', 'logs/sha256']) await mkdir(path.join(this.dir, sub), { recursive: true, mode: 0o700 });
    await sweepStaleUploads(path.join(this.dir, 'ingest'));
  }

  async stat(kind: StoredKind, digest: Digest): Promise<number | undefined> {
    const st = await stat(storedFile(this.dir, kind, digest)).catch(() => undefined);
    return st?.isFile() ? st.size : undefined;
  }

  ingest(kind: StoredKind, maxBytes: number): Promise<BlobUpload> {
    // Same file system as the destination, so the final rename is atomic.
    return SpooledUpload.create(path.join(this.dir, 'ingest'), maxBytes, kind === 'context' ? 'build context' : 'step log', async (tmp, blob) => {
      await mkdir(path.dirname(storedFile(this.dir, kind, blob.digest)), { recursive: true, mode: 0o700 });
      await rename(tmp, storedFile(this.dir, kind, blob.digest));
    });
  }

  async open(kind: StoredKind, digest: Digest): Promise<Readable> {
    const src = createReadStream(storedFile(this.dir, kind, digest));
    await new Promise<void>((resolve, reject) => {
      src.once('open', () => resolve());
      src.once('error', reject);
    }).catch((err: NodeJS.ErrnoException) => {
      throw new CodedError('NOT_FOUND', `${kind} ${digest} is not in ${this.dir} (${err.code ?? err.message}): do the API and the workers share --contexts?`, { retryable: false });
    });
    // The shared dir is trusted to exist, not to be intact: verify while streaming.
    return pipeline(src, verifyDigest({ digest }, kind === 'context' ? 'build context' : 'step log'), () => undefined);
  }

  async touch(kind: StoredKind, digest: Digest): Promise<number | undefined> {
    const file = storedFile(this.dir, kind, digest);
    const t = new Date(this.now());
    // utimes on a missing file fails: absent means "upload it", never a stale yes.
    const ok = await utimes(file, t, t).then(() => true, () => false);
    return ok ? this.stat(kind, digest) : undefined;
  }

  async *unusedSince(kind: StoredKind, cutoffMs: number, signal?: AbortSignal): AsyncIterable<Digest> {
    const dir = path.dirname(storedFile(this.dir, kind, parseDigest(`sha256:${'0'.repeat(64)}`)));
    const ext = kind === 'context' ? '.tar' : '.log';
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      signal?.throwIfAborted();
      const m = /^([a-f0-9]{64})(\.\w+)$/.exec(name);
      if (!m || m[2] !== ext) continue;
      const st = await stat(path.join(dir, name)).catch(() => undefined);
      if (st?.isFile() && st.mtimeMs <= cutoffMs) yield parseDigest(`sha256:${m[1]!}`);
    }
  }

  async removeIfUnused(kind: StoredKind, digest: Digest, cutoffMs: number): Promise<boolean> {
    const file = storedFile(this.dir, kind, digest);
    const st = await stat(file).catch(() => undefined);
    if (!st || st.mtimeMs > cutoffMs) return false;
    // Moved aside first, then dated again: a touch that hit the inode between the two stats shows here.
    const aside = path.join(this.dir, 'ingest', `expired-${randomBytes(8).toString('hex')}`);
    if (!(await rename(file, aside).then(() => true, () => false))) return false;
    try {
      const again = await stat(aside);
      if (again.mtimeMs > cutoffMs) {
        // Re-used meanwhile: put it back (unless an upload stored it again, which is as good).
        await link(aside, file).catch(() => undefined);
        return false;
      }
      return true;
    } finally {
      await rm(aside, { force: true });
    }
  }

  async close(): Promise<void> {}
}
