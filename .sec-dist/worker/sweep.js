import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { LeaseManager, LocalContentStore } from '../cache/index.js';
import { CONTEXT_DIR_PREFIX } from './context.js';
/**
 * What a crashed worker left that the builder's own sweep (runc containers,
 * mounts, active snapshots; run by `Builder.open`) does not cover: half-written
 * store ingests, expired leases, and unpacked build contexts. Runs before the
 * worker takes any job, so nothing here can belong to a live build of ours.
 */
export async function sweepWorkerState(root) {
    const ingests = await new LocalContentStore(path.join(root, 'content')).sweepIngests();
    const leases = await new LeaseManager(path.join(root, 'leases')).sweep();
    let contextDirs = 0;
    const tmp = path.join(root, 'tmp');
    for (const name of await readdir(tmp).catch(() => [])) {
        if (!name.startsWith(CONTEXT_DIR_PREFIX))
            continue;
        await rm(path.join(tmp, name), { recursive: true, force: true });
        contextDirs++;
    }
    return { ingests, leases, contextDirs };
}
//# sourceMappingURL=sweep.js.map