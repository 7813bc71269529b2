import type { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { BuildEvent } from '../core/build.js';

import { formatBytes } from '../core/bytes.js';
import { CodedError, type BuildliteError } from '../core/errors.js';
import { eventFromPb, loadServices, wireErrorFromPb, type PbBuildEvent, type PbWireError } from './proto.js';
import { ConnectError, MessageSizeError } from './transport-errors.js';
import type { PbBuildRequest } from './validate.js';
import { fromStatus } from './wire-errors.js';

/** Bytes per context chunk: well under the 4 MiB message limit, large enough to keep the pipe full. */
export const CHUNK_BYTES = 256 << 10;

export interface ClientOptions {
  /** How long the first call waits for the server to answer before `cannot reach ADDR: no answer within …`. */
  readonly connectTimeoutMs?: number;
}

export const CLIENT_DEFAULTS = {
  // A refused or unknown address fails at once; this bounds a silent one (a firewall that drops
  // packets, a host that is down) well below grpc-js's own 20 s connect timeout and its retries.
  connectTimeoutMs: 10_000,
  // Twice the server's 4 MiB: a limit of ours never cuts an event the server was allowed to send.
  receiveLimitBytes: 8 << 20,
} as const;

export type SubmitRequest = Partial<PbBuildRequest>;

export interface BuildInfo {
  readonly buildId: string;
  readonly client: string;
  readonly state: string;
  readonly project: string;
  readonly worker: string;
  readonly imageDigest: string;
  readonly attempts: number;
  /** Milliseconds since the epoch; 0 when not reached. */
  readonly createdAt: number;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly error?: ReturnType<typeof wireErrorFromPb>;
  /** Why a queued build has not started (its client is at its concurrency quota); absent otherwise. */
  readonly waiting?: string;
}

export interface WorkerInfo {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly concurrency: number;
  readonly active: number;
  readonly startedAt: number;
  readonly lastSeen: number;
  readonly alive: boolean;
  readonly platform: string;
  /** Every platform it offers: its own first, then those it runs under emulation. */
  readonly platforms: readonly string[];
  readonly builds: readonly string[];
  readonly cacheBytes: number;
}

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/**
 * A client of the build service for the CLI, tests and benchmarks. Every
 * failure comes back as a BuildliteError (fromStatus) with the server's code.
 */
export class BuildliteClient {
  private readonly client: AnyClient;
  private readonly health: AnyClient;
  private readonly md: grpc.Metadata;
  private readonly connectTimeoutMs: number;
  private ready: Promise<void> | undefined;

  constructor(
    private readonly addr: string,
    token: string | undefined,
    opts: ClientOptions = {},
  ) {
    this.connectTimeoutMs = opts.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs;
    if (!(Number.isFinite(this.connectTimeoutMs) && this.connectTimeoutMs > 0)) throw new CodedError('INVALID_OPTION', `connectTimeoutMs must be a positive number of milliseconds, got ${opts.connectTimeoutMs}`);
    const { builds, health } = loadServices();
    // The same target, credentials and options on both stubs: grpc-js's subchannel pool then
    // gives them one connection, so the health check that probes it warms the builds stub's.
    const channelOpts = { 'grpc.max_receive_message_length': CLIENT_DEFAULTS.receiveLimitBytes };
    this.client = new builds(addr, grpc.credentials.createInsecure(), channelOpts) as AnyClient;
    this.health = new health(addr, grpc.credentials.createInsecure(), channelOpts) as AnyClient;
    this.md = new grpc.Metadata();
    if (token !== undefined) this.md.set('authorization', `Bearer ${token}`);
  }

  /** A failed call as a BuildliteError; grpc-js's own refusals name this server's address. */
  private fail(err: grpc.ServiceError | Error): BuildliteError {
    return fromStatus(err, { address: this.addr, receiveLimitBytes: CLIENT_DEFAULTS.receiveLimitBytes });
  }

  /**
   * Resolves once the server has answered one health check (no token needed),
   * so every first call is bounded by the connect timeout: a refused or
   * unresolvable address fails at once, a silent one after the timeout, each
   * as one ConnectError. Kept once it succeeded; a failure is tried afresh.
   */
  connected(): Promise<void> {
    this.ready ??= new Promise<void>((resolve, reject) => {
      this.health['Check']!({ service: '' }, { deadline: Date.now() + this.connectTimeoutMs }, (err: grpc.ServiceError | null) => {
        if (!err) resolve();
        else if (err.code === grpc.status.DEADLINE_EXCEEDED) reject(new ConnectError(this.addr, `no answer within ${this.connectTimeoutMs / 1000}s`));
        else if (err.code === grpc.status.UNAVAILABLE) reject(this.fail(err));
        // Any other answer came from a server: the call itself will say what it thinks.
        else resolve();
      });
    }).catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  private async unary<Res>(method: string, req: unknown): Promise<Res> {
    await this.connected();
    return new Promise((resolve, reject) => {
      this.client[method]!(req, this.md, (err: grpc.ServiceError | null, res: Res) => (err ? reject(this.fail(err)) : resolve(res)));
    });
  }

  async hasContext(digest: string): Promise<boolean> {
    return (await this.unary<{ present: boolean }>('HasContext', { digest })).present;
  }

  /**
   * Submits a build: with `context` a tar stream to upload, or
   * `request.context_digest` naming one already stored. An abort cancels the
   * call; a server that had already queued the build then cancels it.
   */
  async submit(request: SubmitRequest, context?: Readable, signal?: AbortSignal): Promise<{ buildId: string; contextDigest: string }> {
    await this.connected();
    return new Promise((resolve, reject) => {
      let settled = false;
      const onAbort = () => call.cancel();
      const call = this.client['Submit']!(this.md, (err: grpc.ServiceError | null, res: { build_id: string; context_digest: string }) => {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(explainRequestSize(this.fail(err), request));
        else resolve({ buildId: res.build_id, contextDigest: res.context_digest });
      }) as grpc.ClientWritableStream<unknown>;
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
      call.write({ request });
      if (!context) {
        call.end();
        return;
      }
      sendChunks(call, context, () => settled).catch((err: unknown) => {
        call.cancel();
        if (!settled) reject(err);
      });
    });
  }

  /** Stores a context tar without starting a build (a named context's directory); its digest. */
  async putContext(context: Readable, signal?: AbortSignal): Promise<string> {
    await this.connected();
    return new Promise((resolve, reject) => {
      let settled = false;
      const onAbort = () => call.cancel();
      const call = this.client['PutContext']!(this.md, (err: grpc.ServiceError | null, res: { context_digest: string }) => {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(this.fail(err));
        else resolve(res.context_digest);
      }) as grpc.ClientWritableStream<unknown>;
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', onAbort, { once: true });
      sendChunks(call, context, () => settled).catch((err: unknown) => {
        call.cancel();
        if (!settled) reject(err);
      });
    });
  }

  /**
   * Events after `fromSeq` until the build's last event. The stream may break
   * (server restart, network): the caller resumes with the last seq it saw.
   */
  async *watch(buildId: string, fromSeq = 0, signal?: AbortSignal): AsyncGenerator<BuildEvent> {
    await this.connected();
    const call = this.client['Watch']!({ build_id: buildId, from_seq: fromSeq }, this.md) as grpc.ClientReadableStream<PbBuildEvent>;
    const onAbort = () => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const pb of call as AsyncIterable<PbBuildEvent>) yield eventFromPb(pb);
    } catch (err) {
      throw this.fail(err as grpc.ServiceError);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /** The full log of one step of an ended build (vertex digest or a unique hex prefix), as chunks. */
  async *getLog(buildId: string, vertex: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
    await this.connected();
    const call = this.client['GetLog']!({ build_id: buildId, vertex }, this.md) as grpc.ClientReadableStream<{ data: Buffer }>;
    const onAbort = () => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const m of call as AsyncIterable<{ data: Buffer }>) yield Buffer.from(m.data);
    } catch (err) {
      throw this.fail(err as grpc.ServiceError);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  async cancel(buildId: string): Promise<BuildInfo> {
    return infoFromPb(await this.unary('Cancel', { build_id: buildId }));
  }

  async get(buildId: string): Promise<BuildInfo> {
    return infoFromPb(await this.unary('Get', { build_id: buildId }));
  }

  async list(filter: { state?: string; client?: string; limit?: number } = {}): Promise<BuildInfo[]> {
    const r = await this.unary<{ builds: PbInfo[] }>('List', { state: filter.state ?? '', client: filter.client ?? '', limit: filter.limit ?? 0 });
    return r.builds.map(infoFromPb);
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    const r = await this.unary<{ workers: PbWorker[] }>('ListWorkers', {});
    return r.workers.map((w) => ({
      id: w.id,
      host: w.host,
      pid: w.pid,
      concurrency: w.concurrency,
      active: w.active,
      startedAt: w.started_at,
      lastSeen: w.last_seen,
      alive: w.alive,
      platform: w.platform,
      platforms: w.platforms ?? [],
      builds: w.builds ?? [],
      cacheBytes: w.cache_bytes,
    }));
  }

  async diskUsage(): Promise<Array<{ worker: string; total: number; kinds: Array<{ kind: string; count: number; size: number }>; error: string }>> {
    return (await this.unary<{ workers: Array<{ worker: string; total: number; kinds: Array<{ kind: string; count: number; size: number }>; error: string }> }>('DiskUsage', {})).workers;
  }

  async prune(opts: { all?: boolean; keepDurationMs?: number; keepStorageBytes?: number } = {}): Promise<Array<{ worker: string; freed_bytes: number; removed: number; error: string }>> {
    return (
      await this.unary<{ workers: Array<{ worker: string; freed_bytes: number; removed: number; error: string }> }>('Prune', {
        all: opts.all ?? false,
        keep_duration_ms: opts.keepDurationMs ?? 0,
        keep_storage_bytes: opts.keepStorageBytes ?? 0,
      })
    ).workers;
  }

  /** grpc.health.v1 Check: SERVING, NOT_SERVING, … */
  async healthCheck(): Promise<string> {
    await this.connected();
    return new Promise((resolve, reject) => {
      this.health['Check']!({ service: '' }, (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(this.fail(err)) : resolve(res.status)));
    });
  }

  /** Resolves once the channel is connected, or rejects after `ms`. */
  waitForReady(ms: number): Promise<void> {
    return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + ms, (err) => (err ? reject(err) : resolve())));
  }

  close(): void {
    this.client.close();
    this.health.close();
  }
}

/**
 * The request message is the one that carries the Dockerfile: when the server
 * refused it for its size and the Dockerfile alone is over the limit, say so.
 */
/** A tar stream as `chunk` messages of CHUNK_BYTES, respecting the call's flow control, then the end of the call. */
async function sendChunks(call: grpc.ClientWritableStream<unknown>, context: Readable, settled: () => boolean): Promise<void> {
  let buf: Buffer[] = [];
  let n = 0;
  const flush = async () => {
    if (n === 0) return;
    const chunk = Buffer.concat(buf, n);
    buf = [];
    n = 0;
    if (!call.write({ chunk })) await new Promise((r) => call.once('drain', r));
  };
  for await (const c of context as AsyncIterable<Buffer>) {
    if (settled()) return;
    buf.push(c);
    n += c.length;
    if (n >= CHUNK_BYTES) await flush();
  }
  await flush();
  call.end();
}

function explainRequestSize(err: BuildliteError, request: SubmitRequest): BuildliteError {
  if (!(err instanceof MessageSizeError) || err.side !== 'server') return err;
  const dockerfileBytes = Buffer.byteLength(request.dockerfile ?? '');
  if (dockerfileBytes <= err.limitBytes) return err;
  return new MessageSizeError(err.messageBytes, err.limitBytes, 'server', `the Dockerfile is ${formatBytes(dockerfileBytes)}: the server takes messages of at most ${formatBytes(err.limitBytes)}`);
}

interface PbInfo {
  build_id: string;
  client: string;
  state: string;
  project: string;
  worker: string;
  image_digest: string;
  attempts: number;
  created_at: number;
  started_at: number;
  finished_at: number;
  error?: PbWireError | null;
  waiting?: string;
}

interface PbWorker {
  id: string;
  host: string;
  pid: number;
  concurrency: number;
  active: number;
  started_at: number;
  last_seen: number;
  alive: boolean;
  platform: string;
  platforms?: string[];
  builds: string[];
  cache_bytes: number;
}

function infoFromPb(p: unknown): BuildInfo {
  const i = p as PbInfo;
  return {
    buildId: i.build_id,
    client: i.client,
    state: i.state,
    project: i.project,
    worker: i.worker,
    imageDigest: i.image_digest,
    attempts: i.attempts,
    createdAt: i.created_at,
    startedAt: i.started_at,
    finishedAt: i.finished_at,
    ...(i.error ? { error: wireErrorFromPb(i.error) } : {}),
    ...(i.waiting ? { waiting: i.waiting } : {}),
  };
}

