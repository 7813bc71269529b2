import * as grpc from '@grpc/grpc-js';
import { eventFromPb, loadServices, wireErrorFromPb } from './proto.js';
import { fromStatus } from './wire-errors.js';
/** Bytes per context chunk: well under the 4 MiB message limit, large enough to keep the pipe full. */
export const CHUNK_BYTES = 256 << 10;
/**
 * A client of the build service for the CLI, tests and benchmarks. Every
 * failure comes back as a BuildliteError (fromStatus) with the server's code.
 */
export class BuildliteClient {
    client;
    health;
    md;
    constructor(addr, token) {
        const { builds, health } = loadServices();
        const opts = { 'grpc.max_receive_message_length': 8 << 20 };
        this.client = new builds(addr, grpc.credentials.createInsecure(), opts);
        this.health = new health(addr, grpc.credentials.createInsecure(), opts);
        this.md = new grpc.Metadata();
        if (token !== undefined)
            this.md.set('authorization', `Bearer ${token}`);
    }
    unary(method, req) {
        return new Promise((resolve, reject) => {
            this.client[method](req, this.md, (err, res) => (err ? reject(fromStatus(err)) : resolve(res)));
        });
    }
    async hasContext(digest) {
        return (await this.unary('HasContext', { digest })).present;
    }
    /** Submits a build: with `context` a tar stream to upload, or `request.context_digest` naming one already stored. */
    submit(request, context) {
        return new Promise((resolve, reject) => {
            let settled = false;
            const call = this.client['Submit'](this.md, (err, res) => {
                settled = true;
                if (err)
                    reject(fromStatus(err));
                else
                    resolve({ buildId: res.build_id, contextDigest: res.context_digest });
            });
            call.write({ request });
            if (!context) {
                call.end();
                return;
            }
            (async () => {
                let buf = [];
                let n = 0;
                const flush = async () => {
                    if (n === 0)
                        return;
                    const chunk = Buffer.concat(buf, n);
                    buf = [];
                    n = 0;
                    if (!call.write({ chunk }))
                        await new Promise((r) => call.once('drain', r));
                };
                for await (const c of context) {
                    if (settled)
                        return;
                    buf.push(c);
                    n += c.length;
                    if (n >= CHUNK_BYTES)
                        await flush();
                }
                await flush();
                call.end();
            })().catch((err) => {
                call.cancel();
                if (!settled)
                    reject(err);
            });
        });
    }
    /**
     * Events after `fromSeq` until the build's last event. The stream may break
     * (server restart, network): the caller resumes with the last seq it saw.
     */
    async *watch(buildId, fromSeq = 0, signal) {
        const call = this.client['Watch']({ build_id: buildId, from_seq: fromSeq }, this.md);
        const onAbort = () => call.cancel();
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
            for await (const pb of call)
                yield eventFromPb(pb);
        }
        catch (err) {
            throw fromStatus(err);
        }
        finally {
            signal?.removeEventListener('abort', onAbort);
            call.cancel();
        }
    }
    async cancel(buildId) {
        return infoFromPb(await this.unary('Cancel', { build_id: buildId }));
    }
    async get(buildId) {
        return infoFromPb(await this.unary('Get', { build_id: buildId }));
    }
    async list(filter = {}) {
        const r = await this.unary('List', { state: filter.state ?? '', client: filter.client ?? '', limit: filter.limit ?? 0 });
        return r.builds.map(infoFromPb);
    }
    async listWorkers() {
        return (await this.unary('ListWorkers', {})).workers;
    }
    async diskUsage() {
        return (await this.unary('DiskUsage', {})).workers;
    }
    async prune(opts = {}) {
        return (await this.unary('Prune', {
            all: opts.all ?? false,
            keep_duration_ms: opts.keepDurationMs ?? 0,
            keep_storage_bytes: opts.keepStorageBytes ?? 0,
        })).workers;
    }
    /** grpc.health.v1 Check: SERVING, NOT_SERVING, … */
    healthCheck() {
        return new Promise((resolve, reject) => {
            this.health['Check']({ service: '' }, (err, res) => (err ? reject(fromStatus(err)) : resolve(res.status)));
        });
    }
    /** Resolves once the channel is connected, or rejects after `ms`. */
    waitForReady(ms) {
        return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + ms, (err) => (err ? reject(err) : resolve())));
    }
    close() {
        this.client.close();
        this.health.close();
    }
}
function infoFromPb(p) {
    const i = p;
    return {
        buildId: i.build_id,
        client: i.client,
        state: i.state,
        project: i.project,
        worker: i.worker,
        imageDigest: i.image_digest,
        attempts: i.attempts,
        ...(i.error ? { error: wireErrorFromPb(i.error) } : {}),
    };
}
//# sourceMappingURL=client.js.map