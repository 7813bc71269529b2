import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../core/digest.js';
import { extractTar } from '../builder/index.js';
import type { ServiceStore } from './service-store.js';

/** Prefix of per-build context dirs under `<root>/tmp`, so the startup sweep can find what a crash left. */
export const CONTEXT_DIR_PREFIX = 'ctx-';

export interface UnpackedContext {
  readonly dir: string;
  remove(): Promise<void>;
}

/**
 * Unpacks a stored context into a private temp dir: the store hands out a
 * stream that fails at its end unless the bytes match the digest, and the
 * tar is extracted with the layer extractor's path safety.
 */
export async function unpackContext(store: ServiceStore, digest: Digest, tmpRoot: string, signal?: AbortSignal): Promise<UnpackedContext> {
  await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(tmpRoot, CONTEXT_DIR_PREFIX));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const verified = await store.open('context', digest, signal);
    // rootMeta: the client's context root mode and mtime, which `COPY . dest` gives dest, exactly as a local build would.
    await extractTar(verified, dir, { whiteouts: false, rootMeta: true, ...(signal ? { signal } : {}) });
    return { dir, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
