import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
/**
 * Disk use of one directory tree, as du counts it: allocated blocks, each
 * inode once (hardlinks are not double counted), never following symlinks.
 */
export async function diskUsage(dir) {
    const seen = new Set();
    let size = 0;
    const stack = [dir];
    while (stack.length > 0) {
        const current = stack.pop();
        let st;
        try {
            st = await lstat(current, { bigint: true });
        }
        catch (err) {
            // A file removed while we walk (a running step) is simply not counted.
            if (err.code === 'ENOENT')
                continue;
            throw err;
        }
        const id = `${st.dev}:${st.ino}`;
        if (seen.has(id))
            continue;
        seen.add(id);
        size += Number(st.blocks) * 512;
        if (st.isDirectory()) {
            for (const name of await readdir(current).catch(() => []))
                stack.push(path.join(current, name));
        }
    }
    return { size, inodes: seen.size };
}
//# sourceMappingURL=usage.js.map