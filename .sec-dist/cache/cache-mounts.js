import { chmod, chown, lstat, mkdir, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256 } from '../core/digest.js';
import { CodedError } from '../core/errors.js';
import { atomicWriteFile, isErrno } from './fs-util.js';
import { SlotLocks } from './slot-lock.js';
/** How often a waiter looks again for a slot another process may have released. */
const CROSS_PROCESS_POLL_MS = 50;
/**
 * Persistent `RUN --mount=type=cache` directories, one set per cache id:
 *
 *   <root>/<sha256(id)>/meta.json    the id and when it was last used
 *   <root>/<sha256(id)>/data/<n>     directory n; 0 is the one `shared` and `locked` use
 *
 * - shared: everyone gets data/0 at once;
 * - private: each concurrent user gets a directory nobody else holds (data/0 when free,
 *   else the first free data/n, created on demand); later users reuse them;
 * - locked: data/0, exclusively; others wait (abortable).
 * Ids are untrusted strings and only ever hashed into names. Sharing modes hold
 * within this process: one CacheMounts per state root per process.
 */
export class CacheMounts {
    root;
    ids = new Map();
    constructor(root) {
        this.root = root;
    }
    async acquire(id, sharing, opts = {}) {
        if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') {
            throw new CodedError('INVALID_ARGUMENT', `cache mount sharing must be shared, private or locked, got ${String(sharing)}`);
        }
        const hex = sha256(id).slice('sha256:'.length);
        const state = this.stateOf(hex);
        const index = await this.claim(state, sharing, opts.signal);
        let released = false;
        const release = async () => {
            if (released)
                return;
            released = true;
            await this.unclaim(state, index);
            if (state.slots.size === 0 && state.waiters.size === 0 && this.ids.get(hex) === state)
                this.ids.delete(hex);
            await this.writeMeta(hex, id).catch(() => undefined);
        };
        try {
            const dir = join(this.root, hex, 'data', String(index));
            const created = await this.ensureDir(hex, dir, opts);
            await this.writeMeta(hex, id);
            return { dir, created, release };
        }
        catch (err) {
            await release();
            throw err;
        }
    }
    /** Cache mounts with size and last use, for `du` and GC. */
    async *list() {
        let names;
        try {
            names = await readdir(this.root);
        }
        catch (err) {
            if (isErrno(err, 'ENOENT'))
                return;
            throw err;
        }
        for (const hex of names.sort()) {
            if (!/^[a-f0-9]{64}$/.test(hex))
                continue;
            const meta = await this.readMeta(hex);
            const size = await treeSize(join(this.root, hex));
            yield { id: hex, name: meta?.id ?? hex, size, lastUsedAt: meta?.lastUsedAt ?? 0, inUse: this.ids.has(hex) };
        }
    }
    /** Deletes a cache mount's directories; refuses one in use (GC skips those). */
    async remove(id) {
        if (!/^[a-f0-9]{64}$/.test(id))
            throw new CodedError('INVALID_ARGUMENT', 'not a cache mount id');
        if (this.ids.has(id))
            throw new CodedError('STORE', `cache mount ${id} is in use`);
        await rm(join(this.root, id), { recursive: true, force: true });
    }
    stateOf(hex) {
        let s = this.ids.get(hex);
        if (!s) {
            const lockDir = join(this.root, hex, 'locks');
            s = { slots: new Map(), waiters: new Set(), locks: new SlotLocks(lockDir), lockDir };
            this.ids.set(hex, s);
        }
        return s;
    }
    /** Waits until the sharing mode allows a slot, here and in other processes, then takes it. */
    async claim(state, sharing, signal) {
        for (;;) {
            signal?.throwIfAborted();
            const skip = new Set();
            for (let index = pick(state, sharing, skip); index !== undefined; index = pick(state, sharing, skip)) {
                if (await this.take(state, index, sharing))
                    return index;
                // Another process holds it: private users move on to another directory, the others wait.
                if (sharing !== 'private')
                    break;
                skip.add(index);
            }
            await waitForChange(state, CROSS_PROCESS_POLL_MS, signal);
        }
    }
    async take(state, index, sharing) {
        let slot = state.slots.get(index);
        if (!slot) {
            const exclusive = sharing !== 'shared';
            const ready = mkdir(state.lockDir, { recursive: true, mode: 0o700 }).then(() => exclusive ? state.locks.tryExclusive(index) : state.locks.tryShared(index));
            slot = { users: 0, exclusive, ready, closing: false };
            state.slots.set(index, slot);
        }
        slot.users++;
        let ok = false;
        try {
            ok = await slot.ready;
        }
        finally {
            if (!ok) {
                slot.users--;
                // A slot that never got its cross-process side holds no marker: drop it at once.
                if (slot.users === 0 && state.slots.get(index) === slot)
                    state.slots.delete(index);
                wakeAll(state);
            }
        }
        return ok;
    }
    async unclaim(state, index) {
        const slot = state.slots.get(index);
        if (!slot)
            return;
        slot.users--;
        if (slot.users === 0) {
            slot.closing = true;
            try {
                await (slot.exclusive ? state.locks.releaseExclusive(index) : state.locks.releaseShared(index));
            }
            finally {
                state.slots.delete(index);
            }
        }
        wakeAll(state);
    }
    async ensureDir(hex, dir, opts) {
        await mkdir(join(this.root, hex, 'data'), { recursive: true, mode: 0o700 });
        try {
            await mkdir(dir, { mode: 0o700 });
        }
        catch (err) {
            if (isErrno(err, 'EEXIST'))
                return false;
            throw err;
        }
        try {
            await opts.seed?.(dir);
            await chown(dir, opts.uid ?? 0, opts.gid ?? 0);
            // chmod after chown: chown may clear setuid/setgid bits a mode asked for.
            await chmod(dir, opts.mode ?? 0o755);
        }
        catch (err) {
            await rm(dir, { recursive: true, force: true });
            throw err;
        }
        return true;
    }
    async writeMeta(hex, id) {
        const path = join(this.root, hex, 'meta.json');
        await atomicWriteFile(path, JSON.stringify({ id, lastUsedAt: Date.now() }));
        const now = new Date();
        await utimes(join(this.root, hex), now, now).catch(() => undefined);
    }
    async readMeta(hex) {
        try {
            const v = JSON.parse(await readFile(join(this.root, hex, 'meta.json'), 'utf8'));
            if (typeof v.id === 'string' && typeof v.lastUsedAt === 'number')
                return { id: v.id, lastUsedAt: v.lastUsedAt };
        }
        catch {
            // fall through: a mount without readable meta is still listed, by its hash
        }
        const st = await stat(join(this.root, hex)).catch(() => undefined);
        return st ? { id: hex, lastUsedAt: st.mtimeMs } : undefined;
    }
}
function pick(state, sharing, skip) {
    const first = state.slots.get(0);
    switch (sharing) {
        case 'shared':
            return first === undefined || (!first.exclusive && !first.closing) ? 0 : undefined;
        case 'locked':
            return first === undefined ? 0 : undefined;
        case 'private':
            for (let i = 0;; i++)
                if (!state.slots.has(i) && !skip.has(i))
                    return i;
    }
}
function wakeAll(state) {
    for (const wake of [...state.waiters])
        wake();
}
/** Resolves on a release in this process, after `pollMs` (other processes), or rejects on abort. */
function waitForChange(state, pollMs, signal) {
    return new Promise((resolve, reject) => {
        const done = () => {
            clearTimeout(timer);
            state.waiters.delete(wake);
            signal?.removeEventListener('abort', onAbort);
        };
        const wake = () => {
            done();
            resolve();
        };
        const onAbort = () => {
            done();
            reject(signal?.reason instanceof Error ? signal.reason : new CodedError('CANCELLED', 'cache mount wait aborted'));
        };
        const timer = setTimeout(wake, pollMs);
        state.waiters.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
    });
}
/** Bytes on disk under a directory, without following symlinks. */
export async function treeSize(path) {
    let st;
    try {
        st = await lstat(path);
    }
    catch (err) {
        if (isErrno(err, 'ENOENT'))
            return 0;
        throw err;
    }
    let total = st.blocks * 512;
    if (st.isDirectory()) {
        const names = await readdir(path).catch(() => []);
        for (const n of names)
            total += await treeSize(join(path, n));
    }
    return total;
}
//# sourceMappingURL=cache-mounts.js.map