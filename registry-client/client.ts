import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { BlobProvider, Ingester } from '../core/content.js';
import type { Digest } from '../core/digest.js';
import { netTimeouts, type NetTimeouts } from '../core/net-faults.js';
import { DEFAULT_PLATFORM, type Descriptor, type Platform } from '../core/oci.js';
import type { CredentialSource } from './credentials.js';
import { DockerConfigCredentials } from './credentials.js';
import { InvalidOptionError } from './errors.js';
import { fetchBlob, fetchManifest, pullImage, resolve, type FetchedManifest, type KnownDocuments, type PullContext, type PullOptions, type ResolvedImage } from './pull.js';
import { deleteManifest, pushBlob, pushImage, putManifest, type BlobPushResult, type PushContext, type PushImageInput, type PushOptions } from './push.js';
import { RecentDocuments } from './recent-documents.js';
import { parseReference, type Reference } from './reference.js';
import { Transport } from './transport.js';
import type { ProgressFn } from './pull.js';

export interface RegistryClientOptions {
  /** Default: `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`) with its credential helpers. */
  readonly credentials?: CredentialSource;
  /** Registries (`host[:port]`) that may use plain HTTP or unverified TLS; loopback always may. */
  readonly insecureRegistries?: readonly string[];
  /** Extra PEM CA bundle trusted on top of the system CAs. */
  readonly caFile?: string;
  readonly userAgent?: string;
  /** Blobs transferred at once, per pull or push. */
  readonly concurrency?: number;
  /** Extra attempts after a transient failure (408/429/5xx, connection reset). */
  readonly retries?: number;
  /** Upper bound on any single wait between attempts, Retry-After included. */
  readonly maxRetryDelayMs?: number;
  readonly maxManifestBytes?: number;
  readonly maxConfigBytes?: number;
  /**
   * How long a request may stall: connecting, waiting for response headers,
   * idle mid-body (core/net-faults.ts NET_TIMEOUT_DEFAULTS: 10 s, 30 s, 60 s).
   * A stall counts as a transient failure: it is retried like a reset.
   */
  readonly timeouts?: Partial<NetTimeouts>;
  /**
   * Where the repositories known to hold a blob outlive this client: pulls
   * record them, pushes look them up, so a push in a later process mounts a
   * base image's layers instead of uploading them again.
   */
  readonly blobHomes?: BlobHomes;
}

/**
 * A persistent hint of which repositories of a registry hold a blob. Only a
 * hint: a mount the registry refuses falls back to an upload.
 */
export interface BlobHomes {
  record(registry: string, repository: string, digest: Digest): void;
  lookup(registry: string, digest: Digest): Promise<readonly string[]>;
}

const DEFAULTS = {
  // ggcr's defaultJobs is 4: enough to fill a link without tripping registry rate limits.
  concurrency: 4,
  // Five attempts ride out a registry restart or a short 503 burst, and still fail within ~30 s.
  retries: 4,
  // A hostile or confused Retry-After must not park a build for hours.
  maxRetryDelayMs: 30_000,
  // Real manifests are a few KiB; containerd caps at 4 MiB too.
  maxManifestBytes: 4 << 20,
  // The distribution spec's manifest limit applies to configs too: the biggest real ones (long
  // histories) are hundreds of KiB, and a config is parsed whole, so its size is its memory.
  maxConfigBytes: 4 << 20,
  userAgent: 'buildlite/0.1',
} as const;

function checkInt(name: string, v: number | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min || v > max) throw new InvalidOptionError(name, `want an integer in [${min}, ${max}], got ${String(v)}`);
  return v;
}

/**
 * An OCI distribution client: resolve and pull images into a content store,
 * push images from a blob provider. One instance per process is enough; it
 * remembers per host whether to speak HTTPS or HTTP, the auth challenge,
 * cached tokens, and which repositories hold which blobs (for cross-repo mounts).
 *
 *   await using client = new RegistryClient();
 *   const img = await client.pullImage('127.0.0.1:5000/app:1', store);
 *   await client.pushImage('127.0.0.1:5000/app:2', { manifest, mediaType, blobs }, store);
 */
export class RegistryClient implements AsyncDisposable {
  private readonly transport: Transport;
  private readonly pullCtx: PullContext;
  private readonly pushCtx: PushContext;
  /** registry → digest → repositories known to hold it. */
  private readonly blobHomes = new Map<string, Map<Digest, Set<string>>>();
  private readonly persistedHomes: BlobHomes | undefined;

  constructor(options: RegistryClientOptions = {}) {
    const concurrency = checkInt('concurrency', options.concurrency, 1, 64) ?? DEFAULTS.concurrency;
    const retries = checkInt('retries', options.retries, 0, 20) ?? DEFAULTS.retries;
    const maxRetryDelayMs = checkInt('maxRetryDelayMs', options.maxRetryDelayMs, 0, 600_000) ?? DEFAULTS.maxRetryDelayMs;
    const maxManifestBytes = checkInt('maxManifestBytes', options.maxManifestBytes, 1024, 1 << 30) ?? DEFAULTS.maxManifestBytes;
    const maxConfigBytes = checkInt('maxConfigBytes', options.maxConfigBytes, 1024, 1 << 30) ?? DEFAULTS.maxConfigBytes;
    if (options.caFile !== undefined && !existsSync(options.caFile)) throw new InvalidOptionError('caFile', 'file does not exist');
    for (const r of options.insecureRegistries ?? []) {
      if (typeof r !== 'string' || !/^[A-Za-z0-9.\-[\]:]+$/.test(r)) throw new InvalidOptionError('insecureRegistries', `want host[:port] entries, got ${JSON.stringify(String(r).slice(0, 80))}`);
    }
    if (options.userAgent !== undefined && (!options.userAgent || /[\r\n]/.test(options.userAgent))) {
      throw new InvalidOptionError('userAgent', 'must be a non-empty single line');
    }
    const timeouts = netTimeouts(options.timeouts, 'timeouts');
    this.transport = new Transport({
      credentials: options.credentials ?? new DockerConfigCredentials(),
      insecureRegistries: options.insecureRegistries ?? [],
      caFile: options.caFile,
      userAgent: options.userAgent ?? DEFAULTS.userAgent,
      retries,
      maxRetryDelayMs,
      timeouts,
    });
    const sawBlob = (ref: Reference, digest: Digest) => this.sawBlob(ref, digest);
    this.pullCtx = {
      transport: this.transport,
      limits: { maxManifestBytes, maxConfigBytes },
      concurrency,
      retries,
      maxRetryDelayMs,
      sawBlob,
      servedBefore: (ref, d) => this.servedBefore(ref, d),
      recent: new RecentDocuments(),
    };
    this.pushCtx = { transport: this.transport, concurrency, retries, maxRetryDelayMs, sawBlob, blobSources: (ref, d) => this.blobSources(ref, d) };
    this.persistedHomes = options.blobHomes;
  }

  private sawBlob(ref: Reference, digest: Digest): void {
    let byDigest = this.blobHomes.get(ref.registry);
    if (!byDigest) this.blobHomes.set(ref.registry, (byDigest = new Map()));
    let repos = byDigest.get(digest);
    if (!repos) byDigest.set(digest, (repos = new Set()));
    if (repos.has(ref.repository)) return;
    repos.add(ref.repository);
    this.persistedHomes?.record(ref.registry, ref.repository, digest);
  }

  private async servedBefore(ref: Reference, digest: Digest): Promise<boolean> {
    if (this.blobHomes.get(ref.registry)?.get(digest)?.has(ref.repository)) return true;
    return ((await this.persistedHomes?.lookup(ref.registry, digest)) ?? []).includes(ref.repository);
  }

  private async blobSources(ref: Reference, digest: Digest): Promise<string[]> {
    const seen = this.blobHomes.get(ref.registry)?.get(digest) ?? [];
    const persisted = (await this.persistedHomes?.lookup(ref.registry, digest)) ?? [];
    return [...new Set([...seen, ...persisted])].filter((r) => r !== ref.repository);
  }

  /** Check the registry answers and the credentials work (what `login` verifies). */
  async ping(registry: string, scope?: string, signal?: AbortSignal): Promise<void> {
    await this.transport.hostInfo(registry, signal);
    const res = await this.transport.request({ registry, method: 'GET', path: '/v2/', scopes: scope ? [scope] : [], action: 'check credentials', signal });
    res.body.resume();
  }

  /**
   * Tag or digest → the platform's manifest and config, all verified. With
   * `local`, documents its repository served before are read from there after
   * one HEAD, and fetched indexes are kept there when it can ingest.
   */
  resolve(ref: string | Reference, platform: Platform = DEFAULT_PLATFORM, signal?: AbortSignal, local?: KnownDocuments): Promise<ResolvedImage> {
    return resolve(this.pullCtx, toRef(ref), platform, signal, local);
  }

  fetchManifest(ref: string | Reference, signal?: AbortSignal): Promise<FetchedManifest> {
    return fetchManifest(this.pullCtx, toRef(ref), signal);
  }

  /** A verified stream of one blob: it errors at its end on a digest or size mismatch. */
  fetchBlob(ref: string | Reference, desc: Descriptor, signal?: AbortSignal): Promise<Readable> {
    return fetchBlob(this.pullCtx, toRef(ref), desc, signal);
  }

  /** Resolve, then fetch every blob the store lacks (config, layers, manifest last). */
  pullImage(ref: string | Reference, store: Ingester & BlobProvider, opts: PullOptions = {}): Promise<ResolvedImage> {
    return pullImage(this.pullCtx, toRef(ref), store, { ...opts, platform: opts.platform ?? DEFAULT_PLATFORM });
  }

  pushImage(ref: string | Reference, image: PushImageInput, provider: BlobProvider, opts: PushOptions = {}): Promise<Digest> {
    return pushImage(this.pushCtx, toRef(ref), image, provider, opts);
  }

  pushBlob(ref: string | Reference, desc: Descriptor, provider: BlobProvider, opts: { mountFrom?: readonly string[]; onProgress?: ProgressFn; signal?: AbortSignal } = {}): Promise<BlobPushResult> {
    return pushBlob(this.pushCtx, toRef(ref), desc, provider, opts);
  }

  putManifest(ref: string | Reference, manifest: Buffer, mediaType: string, signal?: AbortSignal): Promise<Digest> {
    return putManifest(this.pushCtx, toRef(ref), manifest, mediaType, undefined, signal);
  }

  deleteManifest(ref: string | Reference, signal?: AbortSignal): Promise<void> {
    return deleteManifest(this.pushCtx, toRef(ref), signal);
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function toRef(ref: string | Reference): Reference {
  return typeof ref === 'string' ? parseReference(ref) : ref;
}
