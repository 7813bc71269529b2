/**
 * The service's shared blob store: build contexts (the API writes them, the
 * workers read them) and full step logs (the workers write them, the API
 * serves them). Two backings behind one small interface:
 *
 * - a directory (`--contexts DIR`) when the API and the workers share a
 *   machine or a volume;
 * - an OCI registry repository (`--contexts registry://HOST/REPO`) when they
 *   do not: every blob is pushed as a one-layer artifact tagged
 *   `<kind>-<hex>`, so registry garbage collection keeps it and a manifest
 *   GET answers "is it stored, and how big" without fetching the blob.
 *
 * Vocabulary: a blob is named by the sha256 of its bytes; an upload is
 * hashed and counted while it is written to a private temp file and becomes
 * visible only at `commit()` (renamed into the directory, or pushed with HEAD
 * first so bytes already in the registry are not sent again). Readers always
 * get a stream that fails at its end unless the bytes match the digest.
 *
 *   const up = await store.ingest('context', maxBytes);
 *   for await (const c of chunks) await up.write(c);   // or up.abort()
 *   const { digest, size } = await up.commit();
 *   const verified = await store.open('context', digest, signal);
 *
 * This file is re-exported by jobs.ts: it is part of the API ↔ worker contract.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import type { Digest } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { verifyDigest } from '../core/streams.js';
import { SpooledUpload, sweepStaleUploads } from './store-upload.js';

/** What a blob is; each kind has its own name space (file suffix, registry tag prefix). */
export type StoredKind = 'context' | 'log';

export interface StoredBlob {
  readonly digest: Digest;
  readonly size: number;
}

export interface BlobUpload {
  write(chunk: Buffer): Promise<void>;
  readonly bytes: number;
  /** Stores the blob (idempotent: finding it stored already counts as success). */
  commit(): Promise<StoredBlob>;
  /** Drops the upload; safe after a failed commit. */
  abort(): Promise<void>;
}

export interface ServiceStore {
  /** For messages and logs: the directory or `registry://HOST/REPO`. */
  readonly location: string;
  init(): Promise<void>;
  /** Size of a stored blob, or undefined when it is not stored. */
  stat(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<number | undefined>;
  /** Starts an upload bounded by `maxBytes` (LIMIT_EXCEEDED past it). */
  ingest(kind: StoredKind, maxBytes: number): Promise<BlobUpload>;
  /** A digest-verified stream of a stored blob; NOT_FOUND when absent. */
  open(kind: StoredKind, digest: Digest, signal?: AbortSignal): Promise<Readable>;
  close(): Promise<void>;
}

export interface ServiceStoreOptions {
  /** Private scratch dir of this process: uploads bound for a registry are spooled here. */
  readonly tmpDir: string;
  /** Registries that may be spoken to over plain HTTP (loopback always may). */
  readonly insecureRegistries?: readonly string[];
}


const REGISTRY_SCHEME = 'registry://';

/** `registry://HOST/REPO` or a directory path → the store. */
export async function openServiceStore(spec: string, opts: ServiceStoreOptions): Promise<ServiceStore> {
  if (spec.startsWith(REGISTRY_SCHEME)) {
    const { RegistryStore } = await import('./registry-store.js');
    return RegistryStore.fromSpec(spec.slice(REGISTRY_SCHEME.length), opts);
  }
  return new DirStore(path.resolve(spec));
}

export function isRegistryStoreSpec(spec: string): boolean {
  return spec.startsWith(REGISTRY_SCHEME);
}

/** Where a stored blob lives in a directory store (contexts keep the layout of the first version). */
export function storedFile(dir: string, kind: StoredKind, digest: Digest): string {
  const hex = digest.slice('sha256:'.length);
  return kind === 'context' ? path.join(dir, 'sha256', `${hex}.tar`) : path.join(dir, 'logs', 'sha256', `${hex}.log`);
}

/** A directory every process of the service mounts (DESIGN invariant 1: ingest, verify, rename). */
export class DirStore implements ServiceStore {
  constructor(readonly dir: string) {}

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

  async close(): Promise<void> {}
}
