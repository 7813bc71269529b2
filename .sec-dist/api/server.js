import * as grpc from '@grpc/grpc-js';
import pino, {} from 'pino';
import { BuildliteError, CodedError } from '../core/errors.js';
import { isBuildState } from '../worker/jobs.js';
import { TokenAuth } from './auth.js';
import { ContextStore } from './contexts.js';
import { Producer } from './producer.js';
import { eventToPb, loadServices, wireErrorToPb } from './proto.js';
import { REQUEST_LIMIT_DEFAULTS, validateBuildId, validateSubmit } from './validate.js';
import { toStatus } from './wire-errors.js';
export const API_DEFAULTS = {
    // Big enough for a 1 MiB Dockerfile plus headers; context chunks are 256 KiB.
    maxMessageBytes: 4 << 20,
    // Contexts beyond 2 GiB belong in an image, not an upload per build.
    maxContextBytes: 2 * 1024 ** 3,
};
/**
 * The gRPC build service. Every handler authenticates first, validates every
 * field, and turns any failure into a status through wire-errors.ts; nothing a
 * client sends can throw past a handler.
 */
export class ApiServer {
    opts;
    producer;
    server = new grpc.Server({
        'grpc.max_receive_message_length': API_DEFAULTS.maxMessageBytes,
        'grpc.max_send_message_length': API_DEFAULTS.maxMessageBytes,
    });
    auth;
    contexts;
    log;
    limits;
    watches = new Set();
    port = 0;
    constructor(opts, producer) {
        this.opts = opts;
        this.producer = producer;
        this.auth = new TokenAuth(opts.tokens);
        this.contexts = new ContextStore(opts.contextsDir);
        this.log = opts.logger ?? pino({ name: 'buildlite-api' });
        this.limits = { ...REQUEST_LIMIT_DEFAULTS, ...(opts.limits ?? {}) };
        if (opts.maxMessageBytes) {
            this.server = new grpc.Server({ 'grpc.max_receive_message_length': opts.maxMessageBytes, 'grpc.max_send_message_length': opts.maxMessageBytes });
        }
    }
    static async start(opts) {
        const producer = await Producer.connect({ redisUrl: opts.redisUrl, ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(opts.vault ? { vault: opts.vault } : {}) });
        const api = new ApiServer(opts, producer);
        try {
            await api.contexts.init();
            await api.contexts.sweepIngests();
            api.register();
            api.port = await new Promise((resolve, reject) => api.server.bindAsync(opts.listen, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
        }
        catch (err) {
            await producer.close();
            throw err;
        }
        api.log.info({ listen: opts.listen, port: api.port, clients: api.auth.size }, 'api listening');
        return api;
    }
    register() {
        const { builds, health } = loadServices();
        const h = (name, fn) => {
            return (call, cb) => {
                (async () => fn(call.request, this.auth.authenticate(call.metadata), call))().then((res) => cb(null, res), (err) => cb(this.fail(name, err)));
            };
        };
        this.server.addService(builds.service, {
            Submit: (call, cb) => {
                this.submit(call).then((res) => cb(null, res), (err) => cb(this.fail('Submit', err)));
            },
            HasContext: h('HasContext', async (req) => {
                const d = String(req.digest ?? '');
                if (!/^sha256:[a-f0-9]{64}$/.test(d))
                    throw new CodedError('INVALID_ARGUMENT', 'digest: want sha256:<64 hex>');
                return { present: await this.contexts.has(d) };
            }),
            Watch: (call) => void this.watch(call),
            Cancel: h('Cancel', async (req, who) => {
                const rec = await this.ownBuild(req.build_id, who);
                await this.producer.cancel(rec);
                return infoToPb((await this.producer.get(rec.buildId)) ?? rec);
            }),
            Get: h('Get', async (req, who) => infoToPb(await this.ownBuild(req.build_id, who))),
            List: h('List', async (req, who) => {
                const state = String(req.state ?? '');
                if (state !== '' && !isBuildState(state))
                    throw new CodedError('INVALID_ARGUMENT', `state "${state.slice(0, 40)}": want queued, running, succeeded, failed or cancelled`);
                const asked = String(req.client ?? '');
                if (asked !== '' && !who.admin && asked !== who.client)
                    throw new CodedError('PERMISSION_DENIED', 'only an admin token lists the builds of another client');
                const client = asked !== '' ? asked : who.admin ? undefined : who.client;
                const limit = Math.min(Math.max(Number(req.limit) || 100, 1), 1000);
                const builds = await this.producer.list(client, state === '' ? undefined : state, limit);
                return { builds: builds.map(infoToPb) };
            }),
            DiskUsage: h('DiskUsage', async () => {
                const replies = await this.producer.control({ op: 'du' });
                return { workers: replies.flatMap((r) => (r.op === 'du' ? [{ worker: r.worker, total: r.total, kinds: r.kinds, error: r.error ?? '' }] : [])) };
            }),
            Prune: h('Prune', async (req, who) => {
                if (!who.admin)
                    throw new CodedError('PERMISSION_DENIED', 'prune needs an admin token: the cache is shared by every client');
                const replies = await this.producer.control({
                    op: 'prune',
                    all: req.all === true,
                    ...(Number(req.keep_duration_ms) > 0 ? { keepDurationMs: Number(req.keep_duration_ms) } : {}),
                    ...(Number(req.keep_storage_bytes) > 0 ? { keepStorageBytes: Number(req.keep_storage_bytes) } : {}),
                });
                return { workers: replies.flatMap((r) => (r.op === 'prune' ? [{ worker: r.worker, freed_bytes: r.freedBytes, removed: r.removed, error: r.error ?? '' }] : [])) };
            }),
            ListWorkers: h('ListWorkers', async () => ({
                workers: (await this.producer.workers()).map((w) => ({
                    id: w.id,
                    host: w.host,
                    pid: w.pid,
                    concurrency: w.concurrency,
                    active: w.active,
                    started_at: w.startedAt,
                    last_seen: w.lastSeen,
                    alive: w.alive,
                })),
            })),
        });
        this.server.addService(health.service, {
            Check: (call, cb) => {
                const svc = String(call.request?.service ?? '');
                if (svc !== '' && svc !== 'buildlite.v1.Builds') {
                    cb({ code: grpc.status.NOT_FOUND, details: `unknown service "${svc.slice(0, 80)}"` });
                    return;
                }
                void this.producer.ping().then((ok) => cb(null, { status: ok && !this.draining ? 'SERVING' : 'NOT_SERVING' }));
            },
        });
    }
    draining = false;
    /** Shared-queue depth by state, for /metrics. */
    queueDepth() {
        return this.producer.depth();
    }
    fail(method, err) {
        const s = toStatus(err);
        // Expected refusals at debug; anything else is ours to look at. Never the request itself: it may hold secrets.
        if (err instanceof BuildliteError)
            this.log.debug({ method, code: err.code }, err.message);
        else
            this.log.error({ method, err: err instanceof Error ? err.stack : String(err) }, 'handler failed');
        return s;
    }
    async ownBuild(id, who) {
        const buildId = validateBuildId(id);
        const rec = await this.producer.get(buildId);
        // Another client's build looks exactly like a missing one: ids are not an oracle.
        if (!rec || (!who.admin && rec.client !== who.client))
            throw new CodedError('NOT_FOUND', `no build ${buildId}`);
        return rec;
    }
    async submit(call) {
        if (this.draining)
            throw new CodedError('INTERNAL', 'the server is shutting down', { retryable: true });
        const who = this.auth.authenticate(call.metadata);
        const it = call[Symbol.asyncIterator]();
        const first = await it.next();
        if (first.done || first.value.part !== 'request')
            throw new CodedError('INVALID_ARGUMENT', 'the first Submit message must carry the build request');
        const v = validateSubmit(first.value.request, who, this.limits);
        let digest = v.contextDigest;
        if (digest) {
            if (!(await this.contexts.has(digest)))
                throw new CodedError('NOT_FOUND', `context ${digest} is not stored: upload it (send chunks without context_digest)`);
            for (let r = await it.next(); !r.done; r = await it.next()) {
                if (r.value.part === 'chunk')
                    throw new CodedError('INVALID_ARGUMENT', 'send either context_digest or context chunks, not both');
            }
        }
        else {
            const upload = await this.contexts.ingest(this.opts.maxContextBytes ?? API_DEFAULTS.maxContextBytes);
            try {
                for (let r = await it.next(); !r.done; r = await it.next()) {
                    if (r.value.part !== 'chunk' || !Buffer.isBuffer(r.value.chunk))
                        throw new CodedError('INVALID_ARGUMENT', 'after the request, Submit takes only context chunks');
                    await upload.write(r.value.chunk);
                }
                digest = await upload.commit();
            }
            catch (err) {
                await upload.abort();
                throw err;
            }
        }
        const buildId = await this.producer.submit(who.client, v.request, digest, v.secrets, v.project);
        this.log.info({ buildId, client: who.client, context: digest }, 'build queued');
        return { build_id: buildId, context_digest: digest };
    }
    async watch(call) {
        const ac = new AbortController();
        this.watches.add(ac);
        call.on('cancelled', () => ac.abort());
        call.on('close', () => ac.abort());
        try {
            const who = this.auth.authenticate(call.metadata);
            const rec = await this.ownBuild(call.request?.build_id, who);
            const from = Number(call.request?.from_seq ?? 0);
            if (!Number.isSafeInteger(from) || from < 0)
                throw new CodedError('INVALID_ARGUMENT', 'from_seq must be a non-negative integer');
            for await (const ev of this.producer.watch(rec.buildId, from, ac.signal)) {
                if (ac.signal.aborted)
                    break;
                // Respect the client's flow control: wait when the socket buffer is full.
                if (!call.write(eventToPb(ev)))
                    await new Promise((resolve) => { call.once('drain', resolve); ac.signal.addEventListener('abort', () => resolve(), { once: true }); });
            }
            if (!ac.signal.aborted)
                call.end();
        }
        catch (err) {
            if (!ac.signal.aborted)
                call.emit('error', this.fail('Watch', err));
        }
        finally {
            this.watches.delete(ac);
        }
    }
    /** Stops taking calls, lets Watch streams and uploads end for up to `graceMs`, then closes. */
    async close(graceMs = 10_000) {
        this.draining = true;
        await new Promise((resolve) => {
            const timer = setTimeout(() => {
                for (const w of this.watches)
                    w.abort();
                this.server.forceShutdown();
                resolve();
            }, graceMs);
            this.server.tryShutdown(() => {
                clearTimeout(timer);
                resolve();
            });
        });
        await this.producer.close();
    }
}
function infoToPb(r) {
    return {
        build_id: r.buildId,
        client: r.client,
        state: r.state,
        project: r.project,
        worker: r.worker ?? '',
        created_at: r.createdAt,
        started_at: r.startedAt ?? 0,
        finished_at: r.finishedAt ?? 0,
        image_digest: r.imageDigest ?? '',
        error: r.error ? wireErrorToPb(r.error) : null,
        attempts: r.attempts,
    };
}
//# sourceMappingURL=server.js.map