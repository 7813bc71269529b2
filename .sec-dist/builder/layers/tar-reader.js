import { LimitExceededError } from '../../core/streams.js';
import { BLOCK, decodeHeader, decodePax, TarFormatError, XATTR_PAX_PREFIX, } from './tar-format.js';
/** Extension headers (PAX, GNU long names) are held in memory; this bounds them. */
const MAX_META_BYTES = 1 << 20;
/** Pulls exact byte counts out of a chunk stream without copying more than needed. */
class ByteSource {
    it;
    buf = Buffer.alloc(0);
    done = false;
    constructor(it) {
        this.it = it;
    }
    async fill() {
        if (this.done)
            return false;
        const r = await this.it.next();
        if (r.done) {
            this.done = true;
            return false;
        }
        const c = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
        this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
        return true;
    }
    /** Exactly n bytes, or null at a clean end of input before any byte. */
    async exact(n) {
        while (this.buf.length < n) {
            if (!(await this.fill())) {
                if (this.buf.length === 0)
                    return null;
                throw new TarFormatError('unexpected end of tar stream');
            }
        }
        const out = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        return out;
    }
    /** Up to n bytes as they arrive (at least one), for streaming bodies. */
    async some(n) {
        if (this.buf.length === 0 && !(await this.fill()))
            throw new TarFormatError('unexpected end of tar stream');
        const take = Math.min(n, this.buf.length);
        const out = this.buf.subarray(0, take);
        this.buf = this.buf.subarray(take);
        return out;
    }
    /** Reads and drops everything left (trailing zero blocks), so a hash over the stream covers it all. */
    async drain() {
        this.buf = Buffer.alloc(0);
        while (await this.fill())
            this.buf = Buffer.alloc(0);
    }
}
/**
 * Parses a tar stream into entries, streaming bodies with bounded memory.
 * Unknown entry types (sparse files, volume labels) are refused: silently
 * dropping them would apply a different filesystem than the digest promises.
 * After the end-of-archive marker the rest of the input is drained.
 */
export async function* readTar(input) {
    const src = new ByteSource(input[Symbol.asyncIterator]());
    let pax = new Map();
    let longName;
    let longLink;
    for (;;) {
        const block = await src.exact(BLOCK);
        if (block === null)
            return; // no end marker: tolerated, as GNU tar does
        const h = decodeHeader(block);
        if (h === null) {
            await src.drain();
            return;
        }
        if (h.type === 'pax' || h.type === 'pax-global' || h.type === 'gnu-longname' || h.type === 'gnu-longlink') {
            if (h.size > MAX_META_BYTES)
                throw new LimitExceededError(`tar extension header of ${h.size} bytes is too large`);
            const body = (await src.exact(roundUp(h.size)))?.subarray(0, h.size);
            if (!body)
                throw new TarFormatError('unexpected end of tar stream');
            if (h.type === 'pax')
                pax = decodePax(body);
            else if (h.type === 'gnu-longname')
                longName = cstring(body);
            else if (h.type === 'gnu-longlink')
                longLink = cstring(body);
            // Global PAX headers set defaults we do not honour (path/linkpath globals are meaningless for layers).
            continue;
        }
        if (h.type === 'other')
            throw new TarFormatError(`unsupported tar entry type ${JSON.stringify(h.flag)} for ${JSON.stringify(h.name.slice(0, 200))}`);
        const entry = applyExtensions(h, pax, longName, longLink);
        pax = new Map();
        longName = longLink = undefined;
        const size = entry.type === 'file' ? entry.size : 0;
        let remaining = size;
        const body = (async function* () {
            while (remaining > 0) {
                const chunk = await src.some(Math.min(remaining, 1 << 20));
                remaining -= chunk.length;
                yield chunk;
            }
        })();
        yield { ...entry, size, body };
        while (remaining > 0)
            remaining -= (await src.some(remaining)).length;
        if (roundUp(size) > size)
            await src.exact(roundUp(size) - size);
    }
}
function applyExtensions(h, pax, longName, longLink) {
    const num = (key, fallback) => {
        const v = pax.get(key);
        if (v === undefined)
            return fallback;
        const n = Number(v.toString('latin1'));
        if (!Number.isSafeInteger(n) || n < 0)
            throw new TarFormatError(`bad PAX ${key}`);
        return n;
    };
    const xattrs = new Map();
    for (const [k, v] of pax)
        if (k.startsWith(XATTR_PAX_PREFIX))
            xattrs.set(k.slice(XATTR_PAX_PREFIX.length), v);
    return {
        name: pax.get('path')?.toString('utf8') ?? longName ?? h.name,
        type: h.type,
        mode: h.mode,
        uid: num('uid', h.uid),
        gid: num('gid', h.gid),
        size: num('size', h.size),
        mtime: Math.floor(Number(pax.get('mtime')?.toString('latin1') ?? h.mtime)) || 0,
        linkname: pax.get('linkpath')?.toString('utf8') ?? longLink ?? h.linkname,
        devmajor: h.devmajor,
        devminor: h.devminor,
        xattrs,
    };
}
function cstring(b) {
    const end = b.indexOf(0);
    return b.toString('utf8', 0, end === -1 ? b.length : end);
}
function roundUp(n) {
    return Math.ceil(n / BLOCK) * BLOCK;
}
//# sourceMappingURL=tar-reader.js.map