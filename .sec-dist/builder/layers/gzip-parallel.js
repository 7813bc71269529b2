import { availableParallelism } from 'node:os';
import { Transform } from 'node:stream';
import { constants, crc32, deflateRaw } from 'node:zlib';
export const PARALLEL_GZIP_DEFAULTS = {
    level: 6,
    chunkSize: 1024 * 1024,
    concurrency: Math.max(2, availableParallelism() + 1),
    probeSamples: 4,
    probeBytes: 8 * 1024,
    storeAbove: 0.97,
};
const WINDOW = 32 * 1024;
// ID1 ID2, CM=deflate, FLG=0, MTIME=0 (no timestamp: reproducible), XFL=0, OS=3 (unix), as zlib writes it.
const HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03]);
// An empty final block with fixed codes: BFINAL=1, BTYPE=01, end-of-block.
const LAST_BLOCK = Buffer.from([0x03, 0x00]);
function deflate(buf, opts) {
    return new Promise((resolve, reject) => deflateRaw(buf, opts, (err, out) => (err ? reject(err) : resolve(out))));
}
async function compressible(chunk, o) {
    if (chunk.length < o.probeBytes * o.probeSamples)
        return true;
    const step = Math.floor((chunk.length - o.probeBytes) / Math.max(1, o.probeSamples - 1));
    const samples = [];
    for (let i = 0; i < o.probeSamples; i++)
        samples.push(chunk.subarray(i * step, i * step + o.probeBytes));
    const sizes = await Promise.all(samples.map((s) => deflate(s, { level: 1 }).then((d) => d.length)));
    const total = sizes.reduce((a, b) => a + b, 0);
    return total <= o.storeAbove * o.probeBytes * o.probeSamples;
}
async function deflateChunk(chunk, dict, o) {
    const level = (await compressible(chunk, o)) ? o.level : 0;
    const opts = { level, finishFlush: constants.Z_SYNC_FLUSH };
    if (dict && level > 0)
        opts.dictionary = dict;
    return deflate(chunk, opts);
}
export class ParallelGzip extends Transform {
    o;
    pending = [];
    pendingBytes = 0;
    inflight = [];
    lastTail;
    crc = 0;
    total = 0;
    constructor(opts = {}) {
        super();
        this.o = { ...PARALLEL_GZIP_DEFAULTS, ...opts };
        if (!(this.o.level >= 1 && this.o.level <= 9))
            throw new RangeError(`gzip level must be 1-9, got ${this.o.level}`);
        this.push(HEADER);
    }
    _transform(data, _enc, cb) {
        this.crc = crc32(data, this.crc);
        this.total += data.length;
        this.pending.push(data);
        this.pendingBytes += data.length;
        this.drainFull().then(() => cb(), cb);
    }
    _flush(cb) {
        const finish = async () => {
            if (this.pendingBytes > 0)
                this.dispatch(this.takePending(this.pendingBytes));
            while (this.inflight.length > 0)
                this.push(await this.inflight.shift());
            const trailer = Buffer.alloc(8);
            trailer.writeUInt32LE(this.crc >>> 0, 0);
            trailer.writeUInt32LE(this.total % 2 ** 32, 4);
            this.push(Buffer.concat([LAST_BLOCK, trailer]));
        };
        finish().then(() => cb(), cb);
    }
    async drainFull() {
        while (this.pendingBytes >= this.o.chunkSize) {
            this.dispatch(this.takePending(this.o.chunkSize));
            // Bounded: at most `concurrency` chunks (in and out) held at once.
            if (this.inflight.length >= this.o.concurrency)
                this.push(await this.inflight.shift());
        }
    }
    dispatch(chunk) {
        const job = deflateChunk(chunk, this.lastTail, this.o);
        // Rejections surface when the job is awaited in order; keep Node from calling them unhandled meanwhile.
        job.catch(() => undefined);
        this.inflight.push(job);
        this.lastTail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - WINDOW)));
    }
    /** Exactly n bytes off the front of the pending list (n <= pendingBytes). */
    takePending(n) {
        const out = Buffer.allocUnsafe(n);
        let off = 0;
        while (off < n) {
            const head = this.pending[0];
            const k = Math.min(head.length, n - off);
            head.copy(out, off, 0, k);
            off += k;
            if (k === head.length)
                this.pending.shift();
            else
                this.pending[0] = head.subarray(k);
        }
        this.pendingBytes -= n;
        return out;
    }
}
//# sourceMappingURL=gzip-parallel.js.map