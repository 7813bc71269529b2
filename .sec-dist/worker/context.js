import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { CodedError } from '../core/errors.js';
import { verifyDigest } from '../core/streams.js';
import { extractTar } from '../builder/index.js';
import { contextFile } from './jobs.js';
/** Prefix of per-build context dirs under `<root>/tmp`, so the startup sweep can find what a crash left. */
export const CONTEXT_DIR_PREFIX = 'ctx-';
/**
 * Unpacks a stored context into a private temp dir: the tar is checked
 * against its digest while it streams (the shared dir is trusted to exist,
 * not to be intact) and extracted with the layer extractor's path safety.
 */
export async function unpackContext(contextsDir, digest, tmpRoot, signal) {
    const file = contextFile(contextsDir, digest);
    await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(path.join(tmpRoot, CONTEXT_DIR_PREFIX));
    const remove = () => rm(dir, { recursive: true, force: true });
    try {
        const src = createReadStream(file);
        const opened = new Promise((resolve, reject) => {
            src.once('open', () => resolve());
            src.once('error', reject);
        });
        await opened.catch((err) => {
            throw new CodedError('NOT_FOUND', `context ${digest} is not stored on this worker's contexts dir (${err.code ?? err.message}): is --contexts shared with the API?`, { retryable: false });
        });
        // pipeline, not pipe: a read error or a digest mismatch must fail the extraction.
        const verified = pipeline(src, verifyDigest({ digest }, 'build context'), () => undefined);
        await extractTar(verified, dir, { whiteouts: false, ...(signal ? { signal } : {}) });
        return { dir, remove };
    }
    catch (err) {
        await remove();
        throw err;
    }
}
//# sourceMappingURL=context.js.map