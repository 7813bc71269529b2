import { EVENT_FIELD, finishBuild, seqOfStreamId, streamId } from './jobs.js';
export const EVENT_WRITER_DEFAULTS = {
    // ~50k events is far beyond a normal build (each step is a handful of events plus capped logs).
    maxLen: 50_000,
    // The builder already caps each step's log; this bounds the sum for builds with many chatty steps.
    maxLogBytes: 8 << 20,
    eventsTtlS: 3600,
    recordTtlS: 7 * 24 * 3600,
};
export class EventWriter {
    redis;
    keys;
    buildId;
    opts;
    base = 0;
    last = 0;
    logBytes = 0;
    logCapped = false;
    /** Set when Redis refused a write because a newer writer owns the stream. */
    lost = false;
    constructor(redis, keys, buildId, opts = EVENT_WRITER_DEFAULTS) {
        this.redis = redis;
        this.keys = keys;
        this.buildId = buildId;
        this.opts = opts;
    }
    /** Picks the offset of this attempt: after whatever an earlier attempt wrote. */
    async begin() {
        const last = (await this.redis.xrevrange(this.keys.events(this.buildId), '+', '-', 'COUNT', 1))[0];
        this.base = last ? seqOfStreamId(last[0]) : 0;
        this.last = this.base;
    }
    /** The seq the next event of this attempt gets. */
    get nextSeq() {
        return this.last + 1;
    }
    /** Appends a non-terminal event; returns false once this writer has lost the stream. */
    async append(ev) {
        if (this.lost)
            return false;
        let body = stripSeq(ev);
        if (body.type === 'log') {
            if (this.logCapped)
                return true;
            this.logBytes += body.data.length;
            if (this.logBytes > this.opts.maxLogBytes) {
                this.logCapped = true;
                body = { type: 'warning', message: `log output of this build passed ${this.opts.maxLogBytes} bytes: further log lines are not streamed (the worker keeps each step's full log)` };
            }
        }
        const seq = 'seq' in ev && typeof ev.seq === 'number' ? Math.max(this.base + ev.seq, this.last + 1) : this.last + 1;
        try {
            await this.redis.xadd(this.keys.events(this.buildId), 'MAXLEN', '~', this.opts.maxLen, streamId(seq), EVENT_FIELD, JSON.stringify(body));
        }
        catch (err) {
            if (/equal or smaller than the target stream top item/i.test(String(err))) {
                this.lost = true;
                return false;
            }
            throw err;
        }
        this.last = seq;
        return true;
    }
    /** Writes the terminal event and state once; false when someone else finished the build or owns the job. */
    async finish(a) {
        if (this.lost)
            return false;
        const seq = await finishBuild(this.redis, this.keys, {
            ...a,
            buildId: this.buildId,
            seq: this.last + 1,
            eventsTtlS: this.opts.eventsTtlS,
            recordTtlS: this.opts.recordTtlS,
        });
        if (seq > 0)
            this.last = seq;
        return seq > 0;
    }
}
function stripSeq(ev) {
    if (!('seq' in ev))
        return ev;
    const { seq: _seq, ...body } = ev;
    return body;
}
//# sourceMappingURL=events.js.map