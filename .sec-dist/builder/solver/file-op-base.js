import { lstat, mkdir, unlink, rm, chown, chmod, utimes } from 'node:fs/promises';
import path from 'node:path';
import { BuildliteError } from '../../core/errors.js';
export class FileOpError extends BuildliteError {
    path;
    code;
    constructor(message, path, code = 'INVALID_ARGUMENT', options) {
        super(message, options);
        this.path = path;
        this.code = code;
    }
    details() {
        return { path: this.path };
    }
}
/** COPY/ADD with a source that is not there (Docker's "not found"), naming the path as written. */
export class SourceNotFoundError extends FileOpError {
    constructor(pattern) {
        super(`COPY failed: source ${JSON.stringify(pattern)} not found in the build input`, pattern, 'NOT_FOUND');
    }
}
export const ROOT_OWNER = { uid: 0, gid: 0 };
/** The time stamped on things we create rather than copy. */
export function createdTime(ctx) {
    return ctx.sourceDateEpoch !== undefined ? new Date(ctx.sourceDateEpoch * 1000) : new Date();
}
/**
 * Create every missing directory from `rootDir` down to `hostDir` (a path
 * already resolved inside the root, so existing components are real dirs).
 * New dirs get 0755 and `owner`, as BuildKit's MkdirAll with a chown does.
 */
export async function mkdirAllInRoot(rootDir, hostDir, owner, when) {
    const rel = path.relative(rootDir, hostDir);
    if (rel === '')
        return;
    if (rel.startsWith('..') || path.isAbsolute(rel))
        throw new FileOpError(`path ${hostDir} is outside the root`, hostDir, 'UNSAFE_PATH');
    let cur = rootDir;
    for (const part of rel.split(path.sep)) {
        cur = path.join(cur, part);
        const st = await lstat(cur).catch(() => undefined);
        if (st?.isDirectory())
            continue;
        if (st)
            throw new FileOpError(`cannot create directory ${cur.slice(rootDir.length) || '/'}: a non-directory is in the way`, cur);
        await mkdir(cur, 0o755);
        await chown(cur, owner.uid, owner.gid);
        await chmod(cur, 0o755);
        await utimes(cur, when, when);
    }
}
/** Clear a path for a new non-directory entry: a file, link or whole directory tree goes. */
export async function removeExisting(hostPath) {
    const st = await lstat(hostPath).catch(() => undefined);
    if (!st)
        return;
    if (st.isDirectory())
        await rm(hostPath, { recursive: true, force: true });
    else
        await unlink(hostPath);
}
//# sourceMappingURL=file-op-base.js.map