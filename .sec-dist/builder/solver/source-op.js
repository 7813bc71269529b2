import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { CodedError } from '../../core/errors.js';
/** FROM: pull the pinned image's blobs into the store; snapshots are made only when a step needs them. */
export async function runImageSource(def, ctx) {
    const { layers } = await ctx.deps.images.pull(def.ref, def.platform, ctx.deps.store, {
        signal: ctx.opts.signal,
        onProgress: (id, current, total) => ctx.opts.emit({ type: 'progress', id, action: 'pull', current, ...(total !== undefined ? { total } : {}) }),
    });
    return layers;
}
/** ADD <url>: fetch once per build into tmpDir; the content digest enters the cache key. */
export async function runHttpSource(def, deps, signal) {
    if (!deps.http)
        throw new CodedError('PERMISSION_DENIED', `ADD ${def.url}: fetching URLs is not enabled on this builder`);
    const dir = path.join(deps.tmpDir, `http-${randomUUID()}`);
    await mkdir(dir, { mode: 0o700 });
    const file = path.join(dir, path.posix.basename(def.filename) || 'download');
    const digest = await deps.http.fetchToFile(def.url, file, { ...(signal ? { signal } : {}), ...(def.checksum ? { checksum: def.checksum } : {}) });
    return { path: file, digest };
}
//# sourceMappingURL=source-op.js.map