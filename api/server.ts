import * as grpc from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import { isDigest, type Digest } from '../core/digest.js';
import { formatBytes } from '../core/bytes.js';
import { BuildliteError, CodedError } from '../core/errors.js';
import { LimitError } from '../core/limit-error.js';
import { formatLimit } from '../core/limits.js';
import {
  openServiceStore,
  RedisStoreIndex,
  RETENTION_DEFAULTS,
  startStoreRetention,
  type RetentionPolicy,
  type RetentionReport,
  type ServiceStore,
  type StoreRetention,
} from '../store/index.js';
import { isBuildState } from '../worker/build-states.js';
import { namedContextDigests, type QueuedContext } from '../worker/jobs.js';
import type { BuildRecord } from '../worker/records.js';
import type { SecretVault } from '../worker/secret-vault.js';
import { AuthError, TokenAuth, type AuthFailureReason, type Principal, type TokenGrant } from './auth.js';
import { ceilingWarnings } from './client-policy.js';
import { EMPTY_SERVICE_CONFIG, type ServiceConfig } from './service-config.js';
import { Producer } from './producer.js';
import { buildReferences } from './store-references.js';
import { eventToPb, loadServices, wireErrorToPb } from './proto.js';
import { REQUEST_LIMIT_DEFAULTS, validateBuildId, validateSubmit, type PbBuildRequest, type RequestLimits, type ValidatedSubmit } from './validate.js';
import { toStatus } from './wire-errors.js';

export interface ApiServerOptions {
  readonly redisUrl: string;
  readonly prefix?: string;
  /** HOST:PORT to listen on; port 0 picks a free one. */
  readonly listen: string;
  readonly tokens: readonly TokenGrant[];
  /** The service store (see store/service-store.ts): a directory shared with the workers, or `registry://HOST/REPO`. */
  readonly contexts: string;
  /** Private scratch dir (uploads bound for a registry store are spooled here). */
  readonly tmpDir: string;
  readonly insecureRegistries?: readonly string[];
  readonly limits?: Partial<RequestLimits>;
  /**
   * The service's limits and quotas (config file and serve flags), under each
   * token's own (`tokens`). Default: none set, so the built-in defaults.
   */
  readonly config?: ServiceConfig;
  /** Default: API_DEFAULTS.maxMessageBytes, raised to fit the largest Dockerfile any token may send. */
  readonly maxMessageBytes?: number;
  readonly vault?: SecretVault;
  readonly logger?: Logger;
  /**
   * Retention of the store (see store/retention.ts); the API runs it
   * because it owns the uploads. Default: RETENTION_DEFAULTS (7 days, hourly).
   */
  readonly retention?: Partial<RetentionPolicy>;
  /** Clock for the store's last-use times (tests); default Date.now. */
  readonly now?: () => number;
  /** Where refused calls are counted (the process's Prometheus metrics). */
  readonly metrics?: ApiMetricsSink;
  /**
   * The service's URL policy for a context the worker fetches (`context_url`),
   * applied before the build is queued: throws when the workers would refuse
   * the URL. The command that runs the API builds it from the operator's URL
   * flags with the builder's check (the api does not import the builder).
   * Absent: this server takes no URL contexts.
   */
  readonly checkContextUrl?: (url: string) => Promise<void>;
}

/** What the API reports to its process's metrics; the command that runs it wires them in. */
export interface ApiMetricsSink {
  authFailure(reason: AuthFailureReason): void;
}

/** The part of every kind of server call the refusal log needs. */
type AnyCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getPeer'>;

export const API_DEFAULTS = {
  // Big enough for a 1 MiB Dockerfile plus headers; context chunks are 256 KiB.
  maxMessageBytes: 4 << 20,
} as const;

/** Room for the rest of the first Submit message beside the Dockerfile and its .dockerignore (args, labels, refs). */
const REQUEST_HEADROOM_BYTES = 1 << 20;

type Unary<Req, Res> = grpc.handleUnaryCall<Req, Res>;

/**
 * The gRPC build service. Every handler authenticates first, validates every
 * field, and turns any failure into a status through wire-errors.ts; nothing a
 * client sends can throw past a handler.
 */
export class ApiServer {
  private readonly server: grpc.Server;
  /** grpc-js refuses a bigger message from its length prefix, before reading it. */
  private readonly maxMessageBytes: number;
  private readonly auth: TokenAuth;
  private readonly log: Logger;
  private readonly limits: RequestLimits;
  private readonly watches = new Set<AbortController>();
  port = 0;

  private constructor(
    private readonly opts: ApiServerOptions,
    private readonly producer: Producer,
    private readonly contexts: ServiceStore,
  ) {
    this.auth = new TokenAuth(opts.tokens, opts.config);
    this.log = opts.logger ?? pino({ name: 'buildlite-api' });
    this.limits = { ...REQUEST_LIMIT_DEFAULTS, ...(opts.limits ?? {}) };
    // A Dockerfile (and its .dockerignore, bounded alike) travels in one message: an operator who
    // raises max-dockerfile-size must not meet grpc-js's message limit instead.
    const maxDockerfile = Math.max(...this.auth.principals().map((p) => p.policy.limits.maxDockerfileBytes));
    this.maxMessageBytes = opts.maxMessageBytes ?? Math.max(API_DEFAULTS.maxMessageBytes, 2 * maxDockerfile + REQUEST_HEADROOM_BYTES);
    this.server = new grpc.Server({ 'grpc.max_receive_message_length': this.maxMessageBytes, 'grpc.max_send_message_length': this.maxMessageBytes });
  }

  static async start(opts: ApiServerOptions): Promise<ApiServer> {
    const producer = await Producer.connect({ redisUrl: opts.redisUrl, ...(opts.prefix ? { prefix: opts.prefix } : {}), ...(opts.vault ? { vault: opts.vault } : {}) });
    let store: ServiceStore | undefined;
    let api: ApiServer;
    try {
      store = await openServiceStore(opts.contexts, {
        tmpDir: opts.tmpDir,
        insecureRegistries: opts.insecureRegistries ?? [],
        useIndex: new RedisStoreIndex(producer.connection, producer.keys),
        ...(opts.now ? { now: opts.now } : {}),
      });
      await store.init();
      const created = (api = new ApiServer(opts, producer, store));
      api.register();
      api.port = await new Promise<number>((resolve, reject) =>
        created.server.bindAsync(opts.listen, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
      );
    } catch (err) {
      await store?.close();
      await producer.close();
      throw err;
    }
    const policy = { ...RETENTION_DEFAULTS, ...stripUndefined(opts.retention ?? {}) };
    api.retention = startStoreRetention(store, buildReferences(producer.connection, producer.keys), policy, (r, err) => {
      if (err) api.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'store retention pass failed (nothing deleted)');
      else if (r && (r.removed.context > 0 || r.removed.log > 0 || r.expiredBuildIds > 0 || r.errors > 0)) api.log.info({ ...r, store: store?.location }, 'store retention pass');
    });
    const service = opts.config ?? EMPTY_SERVICE_CONFIG;
    api.log.info({ limits: service.limits, quota: service.quota, tokensWithOverrides: opts.tokens.filter((g) => g.limits || g.quota).map((g) => g.client) }, 'service limits');
    for (const w of ceilingWarnings(service, opts.tokens)) api.log.warn({ source: w.source, limit: w.limit, value: w.value, ceiling: w.ceiling }, w.message);
    api.log.info({ listen: opts.listen, port: api.port, clients: api.auth.size, store: api.contexts.location, keepDurationMs: policy.keepDurationMs }, 'api listening');
    return api;
  }

  private register(): void {
    const { builds, health } = loadServices();
    const h = <Req, Res>(name: string, fn: (req: Req, who: Principal, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): Unary<Req, Res> => {
      return (call, cb) => {
        (async () => fn(call.request, this.auth.authenticate(call.metadata), call))().then(
          (res) => cb(null, res),
          (err: unknown) => cb(this.fail(name, err, call)),
        );
      };
    };
    this.server.addService(builds.service, {
      Submit: (call: grpc.ServerReadableStream<{ request?: PbBuildRequest; chunk?: Buffer; part?: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.submit(call).then(
          (res) => cb(null, res),
          (err: unknown) => cb(this.fail('Submit', err, call)),
        );
      },
      PutContext: (call: grpc.ServerReadableStream<{ chunk?: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.putContext(call).then(
          (res) => cb(null, res),
          (err: unknown) => cb(this.fail('PutContext', err, call)),
        );
      },
      HasContext: h<{ digest: string }, { present: boolean }>('HasContext', async (req) => {
        const d = req.digest;
        if (!isDigest(d)) throw new CodedError('INVALID_ARGUMENT', 'digest: want sha256:<64 hex>');
        // A yes promises the context to a Submit by digest: re-dating it keeps retention away.
        return { present: (await this.contexts.touch('context', d)) !== undefined };
      }),
      Watch: (call: grpc.ServerWritableStream<{ build_id: string; from_seq: number }, unknown>) => void this.watch(call),
      GetLog: (call: grpc.ServerWritableStream<{ build_id: string; vertex: string }, unknown>) => void this.getLog(call),
      Cancel: h<{ build_id: string }, unknown>('Cancel', async (req, who) => {
        const rec = await this.ownBuild(req.build_id, who);
        await this.producer.cancel(rec);
        return infoToPb((await this.producer.get(rec.buildId)) ?? rec);
      }),
      Get: h<{ build_id: string }, unknown>('Get', async (req, who) => infoToPb(await this.ownBuild(req.build_id, who))),
      List: h<{ state: string; client: string; limit: number }, unknown>('List', async (req, who) => {
        const state = String(req.state ?? '');
        if (state !== '' && !isBuildState(state)) throw new CodedError('INVALID_ARGUMENT', `state "${state.slice(0, 40)}": want queued, running, succeeded, failed or cancelled`);
        const asked = String(req.client ?? '');
        if (asked !== '' && !who.admin && asked !== who.client) throw new CodedError('PERMISSION_DENIED', 'only an admin token lists the builds of another client');
        const client = asked !== '' ? asked : who.admin ? undefined : who.client;
        const limit = Math.min(Math.max(Number(req.limit) || 100, 1), 1000);
        const builds = await this.producer.list(client, state === '' ? undefined : state, limit);
        return { builds: builds.map(infoToPb) };
      }),
      DiskUsage: h<unknown, unknown>('DiskUsage', async () => {
        const replies = await this.producer.control({ op: 'du' });
        return { workers: replies.flatMap((r) => (r.op === 'du' ? [{ worker: r.worker, total: r.total, kinds: r.kinds, error: r.error ?? '' }] : [])) };
      }),
      Prune: h<{ all: boolean; keep_duration_ms: number; keep_storage_bytes: number }, unknown>('Prune', async (req, who) => {
        if (!who.admin) throw new CodedError('PERMISSION_DENIED', 'prune needs an admin token: the cache is shared by every client');
        const replies = await this.producer.control({
          op: 'prune',
          all: req.all === true,
          ...(Number(req.keep_duration_ms) > 0 ? { keepDurationMs: Number(req.keep_duration_ms) } : {}),
          ...(Number(req.keep_storage_bytes) > 0 ? { keepStorageBytes: Number(req.keep_storage_bytes) } : {}),
        });
        return { workers: replies.flatMap((r) => (r.op === 'prune' ? [{ worker: r.worker, freed_bytes: r.freedBytes, removed: r.removed, error: r.error ?? '' }] : [])) };
      }),
      ListWorkers: h<unknown, unknown>('ListWorkers', async () => ({
        workers: (await this.producer.workers()).map((w) => ({
          id: w.id,
          host: w.host,
          pid: w.pid,
          concurrency: w.concurrency,
          active: w.active,
          started_at: w.startedAt,
          last_seen: w.lastSeen,
          alive: w.alive,
          platform: w.platform ?? '',
          platforms: [...(w.platforms ?? [])],
          builds: [...(w.builds ?? [])],
          cache_bytes: w.cacheBytes ?? 0,
        })),
      })),
    });
    this.server.addService(health.service, {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const svc = String(call.request?.service ?? '');
        if (svc !== '' && svc !== 'buildlite.v1.Builds') {
          cb({ code: grpc.status.NOT_FOUND, details: `unknown service "${svc.slice(0, 80)}"` });
          return;
        }
        void this.producer.ping().then((ok) => cb(null, { status: ok && !this.draining ? 'SERVING' : 'NOT_SERVING' }));
      },
    });
  }

  private draining = false;
  private retention: StoreRetention | undefined;

  /** Runs a store retention pass now (`now` replaces the clock for this pass: tests). */
  sweepStore(now?: number): Promise<RetentionReport> {
    if (!this.retention) throw new CodedError('INTERNAL', 'the server is not started');
    return this.retention.runNow(now);
  }

  /** Shared-queue depth by state, for /metrics. */
  queueDepth(): Promise<Record<string, number>> {
    return this.producer.depth();
  }

  /** Workers whose heartbeat is alive, from their presence in Redis (for /metrics). */
  async workersAlive(): Promise<number> {
    return (await this.producer.workers()).filter((w) => w.alive).length;
  }

  /** Builds of the whole service that ended, by final state, as Redis counts them (for /metrics). */
  buildTotals(): Promise<Record<string, number>> {
    return this.producer.buildTotals();
  }

  /** Builds of the whole service refused or ended by each limit, and those that waited for a quota (for /metrics). */
  limitTotals(): Promise<{ limited: Record<string, number>; quotaWaits: number }> {
    return this.producer.limitTotals();
  }

  /**
   * A handler's failure → its status, logged by what it is. Refusals the
   * client caused are expected: auth at warn (the operator may be under
   * attack, or a CI secret expired), limits and calls that ended early at
   * info, the rest at debug, none with a stack. Anything else is ours to look at. Never the request or the
   * token: either may hold secrets.
   */
  private fail(method: string, err: unknown, call: AnyCall): Partial<grpc.StatusObject> {
    const s = toStatus(err);
    const peer = call.getPeer();
    if (err instanceof AuthError || (err instanceof BuildliteError && err.code === 'PERMISSION_DENIED')) {
      const reason: AuthFailureReason = err instanceof AuthError ? err.reason : 'denied';
      this.opts.metrics?.authFailure(reason);
      this.log.warn({ method, peer, reason, code: err.code }, `${method} refused: ${err.message}`);
    } else if (err instanceof BuildliteError) {
      const level = err.code === 'LIMIT_EXCEEDED' || err.code === 'CANCELLED' ? 'info' : 'debug';
      this.log[level]({ method, peer, code: err.code }, `${method}: ${err.message}`);
    } else {
      this.log.error({ method, peer, err: err instanceof Error ? err.stack : String(err) }, 'handler failed');
    }
    return s;
  }

  private async ownBuild(id: unknown, who: Principal): Promise<BuildRecord> {
    const buildId = validateBuildId(id);
    const rec = await this.producer.get(buildId);
    // Another client's build looks exactly like a missing one: ids are not an oracle.
    if (!rec || (!who.admin && rec.client !== who.client)) throw new CodedError('NOT_FOUND', `no build ${buildId}`);
    return rec;
  }

  private async submit(call: grpc.ServerReadableStream<{ request?: PbBuildRequest; chunk?: Buffer; part?: string }, unknown>): Promise<{ build_id: string; context_digest: string }> {
    const received = { request: false, contextBytes: 0 };
    try {
      return await this.submitStream(call, received);
    } catch (err) {
      // Counted in Redis before the answer: every API process reports the whole service's refusals.
      if (err instanceof LimitError) await this.producer.countLimited(err.limit).catch(() => undefined);
      if (!call.cancelled) throw err;
      // grpc-js ended the call before we answered: the client went away, or a message was over
      // the size limit, which grpc-js refuses from its length prefix (the client got
      // RESOURCE_EXHAUSTED naming the limit). Either way nothing of ours failed.
      throw new CodedError('CANCELLED', `the call ended before it was answered (the client cancelled it, or sent a message over the ${formatBytes(this.maxMessageBytes)} limit); received: ${received.request ? `the request and ${formatBytes(received.contextBytes)} of context` : 'no request'}`);
    }
  }

  private async submitStream(
    call: grpc.ServerReadableStream<{ request?: PbBuildRequest; chunk?: Buffer; part?: string }, unknown>,
    received: { request: boolean; contextBytes: number },
  ): Promise<{ build_id: string; context_digest: string }> {
    if (this.draining) throw new CodedError('INTERNAL', 'the server is shutting down', { retryable: true });
    const who = this.auth.authenticate(call.metadata);
    await this.producer.checkQuota(who.client, who.policy.quota);
    const it = call[Symbol.asyncIterator]() as AsyncIterator<{ request?: PbBuildRequest; chunk?: Buffer; part?: string }>;
    const first = await it.next();
    received.request = !first.done;
    if (first.done || first.value.part !== 'request') throw new CodedError('INVALID_ARGUMENT', 'the first Submit message must carry the build request');
    const v = validateSubmit(first.value.request, who, this.limits);
    // Git named contexts are fetched by the worker too: the same early answer as a URL context, before any upload.
    for (const c of Object.values(v.request.namedContexts ?? {})) if (c.type === 'git') await this.checkUrl(c.url);
    if (v.contextUrl) return this.submitUrl(call, it, v, v.contextUrl, who);
    let digest = v.contextDigest;
    if (digest) {
      // Touched, not just looked up: a re-used context counts as fresh for retention.
      if ((await this.contexts.touch('context', digest)) === undefined) throw new CodedError('NOT_FOUND', `context ${digest} is not stored: upload it (send chunks without context_digest)`);
      for (let r = await it.next(); !r.done; r = await it.next()) {
        if (r.value.part === 'chunk') throw new CodedError('INVALID_ARGUMENT', 'send either context_digest or context chunks, not both');
      }
    } else {
      const chunks = (async function* () {
        for (let r = await it.next(); !r.done; r = await it.next()) {
          if (r.value.part !== 'chunk' || !Buffer.isBuffer(r.value.chunk)) throw new CodedError('INVALID_ARGUMENT', 'after the request, Submit takes only context chunks');
          yield r.value.chunk;
        }
      })();
      digest = await this.ingestContext(chunks, who, received);
    }
    // Named contexts were stored before (PutContext); touched, like a re-used context, so retention keeps them.
    for (const d of namedContextDigests(v.request)) {
      if ((await this.contexts.touch('context', d)) === undefined) throw new CodedError('NOT_FOUND', `named context ${d} is not stored: upload it with PutContext first`);
    }
    return { build_id: await this.queue(call, v, { digest }, who), context_digest: digest };
  }

  /**
   * Submit of a context the worker fetches: the URL passes the service's URL
   * policy here, so a URL the workers would refuse is answered now and
   * nothing is queued; the job carries the URL, never an upload.
   */
  private async submitUrl(
    call: grpc.ServerReadableStream<unknown, unknown>,
    rest: AsyncIterator<{ part?: string }>,
    v: ValidatedSubmit,
    context: { readonly url: string; readonly file: string },
    who: Principal,
  ): Promise<{ build_id: string; context_digest: string }> {
    if (!this.opts.checkContextUrl) throw new CodedError('INVALID_ARGUMENT', 'this server takes no URL contexts: upload the context (clone or download it and pass the directory)');
    for (let r = await rest.next(); !r.done; r = await rest.next()) {
      if (r.value.part === 'chunk') throw new CodedError('INVALID_ARGUMENT', 'send either context_url or context chunks, not both');
    }
    await this.checkUrl(context.url);
    return { build_id: await this.queue(call, v, context, who), context_digest: '' };
  }

  /** A URL a worker would fetch, under the operator's URL policy (when this server has one). */
  private async checkUrl(url: string): Promise<void> {
    await this.opts.checkContextUrl?.(url).catch((err: unknown) => {
      // The operator's URL policy refused the URL, not the caller's token: a failed submit (exit 1),
      // not a refused token (exit 3), and not counted as an auth failure.
      if (err instanceof BuildliteError && err.code === 'PERMISSION_DENIED') throw new CodedError('INVALID_ARGUMENT', err.message, { cause: err });
      throw err;
    });
  }

  /** Queues a validated build with its context; a client that left meanwhile gets its build cancelled. */
  private async queue(call: grpc.ServerReadableStream<unknown, unknown>, v: ValidatedSubmit, context: QueuedContext, who: Principal): Promise<string> {
    const buildId = await this.producer.submit(who.client, v.request, context, v.secrets, v.project, who.policy.quota);
    this.log.info({ buildId, client: who.client, context: 'digest' in context ? context.digest : context.url }, 'build queued');
    if (call.cancelled) {
      // The client gave up (Ctrl-C) while its build was being queued: it never learns the id, so nobody else would cancel it.
      const rec = await this.producer.get(buildId);
      if (rec) await this.producer.cancel(rec);
      this.log.info({ buildId, client: who.client }, 'build cancelled: the client left during submit');
    }
    return buildId;
  }

  /** A context tar into the store, within the client's context size limit; its digest. */
  private async ingestContext(chunks: AsyncIterable<Buffer>, who: Principal, received: { contextBytes: number }): Promise<Digest> {
    const max = who.policy.limits.maxContextBytes;
    // The store bounds the upload too; this check comes first so the refusal names the client.
    const upload = await this.contexts.ingest('context', max);
    try {
      for await (const chunk of chunks) {
        if (received.contextBytes + chunk.length > max) {
          throw new LimitError('maxContextBytes', max, `the build context is larger than the limit of ${formatLimit('maxContextBytes', max)} for client ${who.client}`);
        }
        received.contextBytes += chunk.length;
        await upload.write(chunk);
      }
      if (upload.bytes === 0) throw new CodedError('INVALID_ARGUMENT', 'the build context is empty: send a tar (an empty tar is 1024 zero bytes)');
      return (await upload.commit()).digest;
    } catch (err) {
      await upload.abort();
      throw err;
    }
  }

  /** PutContext: a named context's directory, stored by digest (deduplicated like any context) for a Submit to name. */
  private async putContext(call: grpc.ServerReadableStream<{ chunk?: Buffer }, unknown>): Promise<{ context_digest: string }> {
    if (this.draining) throw new CodedError('INTERNAL', 'the server is shutting down', { retryable: true });
    const who = this.auth.authenticate(call.metadata);
    const chunks = (async function* () {
      for await (const m of call as AsyncIterable<{ chunk?: Buffer }>) {
        if (!Buffer.isBuffer(m.chunk)) throw new CodedError('INVALID_ARGUMENT', 'PutContext takes context chunks');
        yield m.chunk;
      }
    })();
    const digest = await this.ingestContext(chunks, who, { contextBytes: 0 });
    this.log.info({ client: who.client, context: digest }, 'context stored');
    return { context_digest: digest };
  }

  private async watch(call: grpc.ServerWritableStream<{ build_id: string; from_seq: number }, unknown>): Promise<void> {
    const ac = new AbortController();
    this.watches.add(ac);
    call.on('cancelled', () => ac.abort());
    call.on('close', () => ac.abort());
    try {
      const who = this.auth.authenticate(call.metadata);
      const rec = await this.ownBuild(call.request?.build_id, who);
      const from = Number(call.request?.from_seq ?? 0);
      if (!Number.isSafeInteger(from) || from < 0) throw new CodedError('INVALID_ARGUMENT', 'from_seq must be a non-negative integer');
      for await (const ev of this.producer.watch(rec.buildId, from, ac.signal)) {
        if (ac.signal.aborted) break;
        // Respect the client's flow control: wait when the socket buffer is full.
        if (!call.write(eventToPb(ev))) await new Promise<void>((resolve) => { call.once('drain', resolve); ac.signal.addEventListener('abort', () => resolve(), { once: true }); });
      }
      if (!ac.signal.aborted) call.end();
    } catch (err) {
      if (!ac.signal.aborted) call.emit('error', this.fail('Watch', err, call));
    } finally {
      this.watches.delete(ac);
    }
  }

  /**
   * Streams the full log of one step, from the service store. The step is
   * named by its vertex digest or a unique prefix of its hex (as the clip
   * marker prints it).
   */
  private async getLog(call: grpc.ServerWritableStream<{ build_id: string; vertex: string }, unknown>): Promise<void> {
    const ac = new AbortController();
    call.on('cancelled', () => ac.abort());
    try {
      const who = this.auth.authenticate(call.metadata);
      const rec = await this.ownBuild(call.request?.build_id, who);
      const want = String(call.request?.vertex ?? '').replace(/^sha256:/, '');
      if (!/^[a-f0-9]{4,64}$/.test(want)) throw new CodedError('INVALID_ARGUMENT', 'vertex: want a step digest (sha256:<hex>) or at least 4 hex characters of it');
      const logs = await this.producer.stepLogs(rec.buildId);
      const matches = Object.keys(logs).filter((v) => v.replace(/^sha256:/, '').startsWith(want));
      if (matches.length === 0) {
        const have = Object.keys(logs).map((v) => v.replace(/^sha256:/, '').slice(0, 12));
        throw new CodedError('NOT_FOUND', `build ${rec.buildId} has no stored log for step ${want}${have.length ? ` (steps with logs: ${have.join(', ')})` : ' (no step of it has a stored log, or the build has not ended yet)'}`);
      }
      if (matches.length > 1) throw new CodedError('INVALID_ARGUMENT', `step ${want} is ambiguous in build ${rec.buildId}: give more of its digest`);
      const ref = logs[matches[0]!]!;
      const stream = await this.contexts.open('log', ref.digest, ac.signal);
      try {
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (ac.signal.aborted) break;
          if (!call.write({ data: chunk })) await new Promise<void>((resolve) => { call.once('drain', resolve); ac.signal.addEventListener('abort', () => resolve(), { once: true }); });
        }
      } finally {
        stream.destroy();
      }
      if (!ac.signal.aborted) call.end();
    } catch (err) {
      if (!ac.signal.aborted) call.emit('error', this.fail('GetLog', err, call));
    }
  }

  /** Stops taking calls, lets Watch streams and uploads end for up to `graceMs`, then closes. */
  async close(graceMs = 10_000): Promise<void> {
    this.draining = true;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const w of this.watches) w.abort();
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await this.retention?.stop();
    await this.producer.close();
    await this.contexts.close();
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function infoToPb(r: BuildRecord): Record<string, unknown> {
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
    waiting: r.state === 'queued' ? (r.waiting ?? '') : '',
  };
}
