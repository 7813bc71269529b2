import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { digestFromHash } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { contextFile } from '../worker/jobs.js';
/**
 * Uploaded build contexts, content-addressed by the sha256 of the tar, in a
 * directory every worker can read. An upload is written to `ingest/` while it
 * is hashed and counted, and renamed into `sha256/<hex>.tar` only once
 * complete (DESIGN invariant 1); finding it already there counts as success.
 */
export class ContextStore {
    dir;
    constructor(dir) {
        this.dir = dir;
    }
    async init() {
        await mkdir(path.join(this.dir, 'sha256'), { recursive: true, mode: 0o700 });
        await mkdir(path.join(this.dir, 'ingest'), { recursive: true, mode: 0o700 });
    }
    async has(digest) {
        try {
            return (await stat(contextFile(this.dir, digest))).isFile();
        }
        catch {
            return false;
        }
    }
    /** Starts an upload bounded by `maxBytes`. */
    async ingest(maxBytes) {
        const tmp = path.join(this.dir, 'ingest', `${Date.now()}-${randomBytes(8).toString('hex')}`);
        const fh = await open(tmp, 'wx', 0o600);
        return new ContextUpload(this.dir, tmp, fh, maxBytes);
    }
    /** Removes uploads older than `olderThanMs` that a crashed API left. */
    async sweepIngests(olderThanMs = 3600_000) {
        let n = 0;
        const dir = path.join(this.dir, 'ingest');
        for (const name of await readdir(dir).catch(() => [])) {
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
    dir;
    tmp;
    fh;
    maxBytes;
    hash = createHash('sha256');
    size = 0;
    done = false;
    constructor(dir, tmp, fh, maxBytes) {
        this.dir = dir;
        this.tmp = tmp;
        this.fh = fh;
        this.maxBytes = maxBytes;
    }
    async write(chunk) {
        this.size += chunk.length;
        if (this.size > this.maxBytes)
            throw new CodedError('LIMIT_EXCEEDED', `the build context is larger than ${this.maxBytes} bytes`);
        this.hash.update(chunk);
        await this.fh.write(chunk);
    }
    get bytes() {
        return this.size;
    }
    async commit() {
        if (this.size === 0)
            throw new CodedError('INVALID_ARGUMENT', 'the build context is empty: send a tar (an empty tar is 1024 zero bytes)');
        const digest = digestFromHash(this.hash);
        await this.fh.sync();
        await this.fh.close();
        this.done = true;
        const dest = contextFile(this.dir, digest);
        await rename(this.tmp, dest);
        return digest;
    }
    async abort() {
        if (!this.done)
            await this.fh.close().catch(() => undefined);
        this.done = true;
        await rm(this.tmp, { force: true });
    }
}
//# sourceMappingURL=contexts.js.map