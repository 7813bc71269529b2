import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { atomicWriteFile, isErrno, unlinkQuiet } from './fs-util.js';
export function snapshotResource(id) {
    return `snapshot:${id}`;
}
export function cacheMountResource(id) {
    return `cache-mount:${id}`;
}
const MAX_LEASE_BYTES = 16 << 20;
export class LeaseManager {
    dir;
    now;
    ready;
    constructor(dir, now = Date.now) {
        this.dir = dir;
        this.now = now;
    }
    /** Takes (or replaces) the lease `id`. */
    async acquire(id, resources, ttlMs) {
        if (!(ttlMs > 0))
            throw new CodedError('INVALID_ARGUMENT', `lease TTL must be positive, got ${ttlMs}`);
        const info = { id, resources: [...new Set(resources)], expiresAt: this.now() + ttlMs };
        await this.write(info);
        return this.handle(info);
    }
    async release(id) {
        await unlinkQuiet(this.path(id));
    }
    /** Unexpired leases; expired ones are ignored (and removed by `sweep`). */
    async active() {
        const now = this.now();
        return (await this.readAll()).filter((l) => l.expiresAt > now);
    }
    /** Every resource some unexpired lease protects. */
    async protectedResources() {
        const out = new Set();
        for (const l of await this.active())
            for (const r of l.resources)
                out.add(r);
        return out;
    }
    /** Removes expired leases; returns how many. */
    async sweep() {
        const now = this.now();
        let removed = 0;
        for (const l of await this.readAll()) {
            if (l.expiresAt <= now) {
                await unlinkQuiet(this.path(l.id));
                removed++;
            }
        }
        return removed;
    }
    handle(initial) {
        let current = initial;
        let released = false;
        const mgr = this;
        // Writes are chained: two concurrent adds must not land out of order and drop the first's resources.
        let writing = Promise.resolve();
        const update = (next) => {
            if (released)
                return Promise.reject(new CodedError('STORE', `lease ${current.id} was released`));
            current = next;
            const run = writing.then(() => (released ? undefined : mgr.write(current)));
            writing = run.catch(() => undefined);
            return run;
        };
        return {
            get id() {
                return current.id;
            },
            get resources() {
                return current.resources;
            },
            get expiresAt() {
                return current.expiresAt;
            },
            add: (resources) => update({ ...current, resources: [...new Set([...current.resources, ...resources])] }),
            extend: (ttlMs) => update({ ...current, expiresAt: mgr.now() + ttlMs }),
            release: async () => {
                if (released)
                    return;
                released = true;
                await writing;
                await mgr.release(current.id);
            },
            [Symbol.asyncDispose]() {
                return this.release();
            },
        };
    }
    async write(info) {
        await this.init();
        // No fsync: other processes see the rename at once, and after a crash the lease is moot (its holder is gone).
        await atomicWriteFile(this.path(info.id), JSON.stringify(info), 0o600, { durable: false });
    }
    async readAll() {
        let names;
        try {
            names = await readdir(this.dir);
        }
        catch (err) {
            if (isErrno(err, 'ENOENT'))
                return [];
            throw err;
        }
        const out = [];
        for (const name of names) {
            if (!name.endsWith('.json'))
                continue;
            const lease = await readLease(join(this.dir, name));
            if (lease)
                out.push(lease);
        }
        return out;
    }
    /** Lease ids are caller strings; hash them so no id can name another path. */
    path(id) {
        return join(this.dir, `${sha256(id).slice('sha256:'.length)}.json`);
    }
    init() {
        this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).then(() => undefined, (err) => {
            this.ready = undefined;
            throw err;
        });
        return this.ready;
    }
}
async function readLease(path) {
    let text;
    try {
        text = await readFile(path, 'utf8');
    }
    catch (err) {
        if (isErrno(err, 'ENOENT'))
            return undefined;
        throw err;
    }
    if (text.length > MAX_LEASE_BYTES)
        return undefined;
    try {
        const v = JSON.parse(text);
        if (typeof v.id !== 'string' || typeof v.expiresAt !== 'number' || !Array.isArray(v.resources))
            return undefined;
        return { id: v.id, expiresAt: v.expiresAt, resources: v.resources.filter((r) => typeof r === 'string') };
    }
    catch {
        // A half-written lease cannot exist (atomic writes); anything else unreadable protects nothing.
        return undefined;
    }
}
//# sourceMappingURL=leases.js.map