import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { BlobInfo, IngestWriter, Ingester } from '../../core/content.js';
import { digestFromHash, type Digest } from '../../core/digest.js';

/**
 * A minimal real-file ingester for layer tests (the project's content store
 * lives in cache/ and has its own suite): hashes while writing, renames into
 * `blobs/<hex>` on commit.
 */
export class DirIngester implements Ingester {
  constructor(readonly dir: string) {}

  async ingest(_ref: string, expected?: Partial<BlobInfo>): Promise<IngestWriter> {
    await mkdir(path.join(this.dir, 'blobs'), { recursive: true });
    await mkdir(path.join(this.dir, 'ingest'), { recursive: true });
    const tmp = path.join(this.dir, 'ingest', randomUUID());
    const file = createWriteStream(tmp);
    const hash = createHash('sha256');
    let size = 0;
    const blobs = path.join(this.dir, 'blobs');
    const w = new Writable({
      write(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        file.write(chunk, cb);
      },
      final(cb) {
        file.end(cb);
      },
    }) as IngestWriter;
    w.commit = async () => {
      const digest = digestFromHash(hash);
      if (expected?.digest && expected.digest !== digest) throw new Error('digest mismatch');
      await rename(tmp, path.join(blobs, digest.slice(7)));
      return { digest, size };
    };
    w.abort = async () => {
      // Wait for the close: a destroy before the open finished would otherwise create the file after the rm.
      if (!file.closed) {
        const closed = new Promise<void>((resolve) => file.once('close', () => resolve()));
        file.destroy();
        await closed;
      }
      await rm(tmp, { force: true });
    };
    return w;
  }

  path(d: Digest): string {
    return path.join(this.dir, 'blobs', d.slice(7));
  }

  open(d: Digest) {
    return createReadStream(this.path(d));
  }

  async has(d: Digest): Promise<boolean> {
    return stat(this.path(d)).then(
      () => true,
      () => false,
    );
  }
}
