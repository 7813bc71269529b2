import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
/**
 * Records live one per file, so concurrent writers never rewrite a shared
 * database. A record is written to a temp file, fsynced, then hard-linked to
 * its final name: `link` fails when the name exists, which makes "create if
 * absent" atomic, and a crash leaves only a temp file that `sweepTemps` drops.
 */
export class RecordStore {
    dir;
    constructor(dir) {
        this.dir = dir;
    }
    async init() {
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
    }
    /** Creates the record; false when a record of that name already exists. */
    async create(rec) {
        const tmp = path.join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
        const fh = await open(tmp, 'wx', 0o600);
        try {
            await fh.writeFile(JSON.stringify(rec));
            await fh.sync();
        }
        finally {
            await fh.close();
        }
        try {
            await link(tmp, this.fileOf(rec.name));
            return true;
        }
        catch (err) {
            if (err.code === 'EEXIST')
                return false;
            throw err;
        }
        finally {
            await unlink(tmp).catch(() => undefined);
        }
    }
    async get(name) {
        try {
            return parseRecord(await readFile(this.fileOf(name), 'utf8'));
        }
        catch (err) {
            if (err.code === 'ENOENT')
                return undefined;
            throw err;
        }
    }
    async delete(name) {
        await rm(this.fileOf(name), { force: true });
    }
    async all() {
        const out = [];
        for (const f of await readdir(this.dir)) {
            if (!f.endsWith('.json'))
                continue;
            try {
                out.push(parseRecord(await readFile(path.join(this.dir, f), 'utf8')));
            }
            catch (err) {
                // Deleted between readdir and read: a concurrent remove.
                if (err.code !== 'ENOENT')
                    throw err;
            }
        }
        return out;
    }
    /** Drops temp files left by a crash between write and link. */
    async sweepTemps() {
        for (const f of await readdir(this.dir)) {
            if (f.startsWith('.tmp-'))
                await rm(path.join(this.dir, f), { force: true });
        }
    }
    /** Names are caller strings (chain ids, keys); the file name is their hash, so any name is safe. */
    fileOf(name) {
        return path.join(this.dir, `${createHash('sha256').update(name).digest('hex')}.json`);
    }
}
function parseRecord(text) {
    const r = JSON.parse(text);
    if (typeof r.name !== 'string' || typeof r.id !== 'string' || !/^[a-z0-9]+$/.test(r.id)) {
        throw new Error(`corrupt snapshot record for ${JSON.stringify(String(r.name).slice(0, 80))}`);
    }
    return r;
}
//# sourceMappingURL=records.js.map