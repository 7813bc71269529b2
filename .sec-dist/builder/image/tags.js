import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDigest } from '../../core/digest.js';
/**
 * Local image names (`-t` without `--push`): ref → manifest descriptor, in one
 * JSON file replaced atomically. `buildlite push REF` reads it.
 */
export class TagStore {
    file;
    constructor(root) {
        this.file = path.join(root, 'images.json');
    }
    async get(ref) {
        return (await this.load())[ref];
    }
    async set(refs, desc) {
        const all = await this.load();
        for (const r of refs)
            all[r] = desc;
        const tmp = `${this.file}.tmp-${process.pid}-${Date.now()}`;
        await writeFile(tmp, JSON.stringify(all, null, 1), { mode: 0o600 });
        await rename(tmp, this.file);
    }
    async list() {
        return this.load();
    }
    /** Digests the tags keep alive, for GC. */
    async roots() {
        return Object.values(await this.load()).map((d) => parseDigest(d.digest));
    }
    async load() {
        try {
            return JSON.parse(await readFile(this.file, 'utf8'));
        }
        catch (err) {
            if (err.code === 'ENOENT')
                return {};
            throw err;
        }
    }
}
//# sourceMappingURL=tags.js.map